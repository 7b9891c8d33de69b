"""One dashboard viewer, for the footprint benchmark: logs in as the operator and refreshes.

Runs the real page (dashboard/app.py) through Streamlit's AppTest in this process, so the
process's RSS and CPU are what the dashboard costs per open session: its Cassandra
session, queries, data frames and charts, every DASHBOARD_REFRESH_SECONDS.

    .venv/bin/python -m bench.dashboard_load [--seconds 600]
"""

from __future__ import annotations

import argparse
import time

from streamlit.testing.v1 import AppTest

from bench.harness import ROOT, main_guard, settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    env = settings().env
    refresh = float(env.get("DASHBOARD_REFRESH_SECONDS") or 5)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
    at.text_input(key="login_user").input(env["DASHBOARD_OPERATOR_USER"])
    at.text_input(key="login_password").input(env["DASHBOARD_OPERATOR_PASSWORD"])
    at.button[0].click().run()
    deadline = time.monotonic() + args.seconds
    renders = 0
    while time.monotonic() < deadline:
        time.sleep(refresh)
        at.run()
        renders += 1
    print(f"dashboard viewer: {renders} refreshes, errors on page: {len(at.exception)}", flush=True)
    return 0


if __name__ == "__main__":
    main_guard(main)
