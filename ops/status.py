"""`make status`: one coloured table of the whole pipeline, exit code 1 when something is down or stale.

    python -m ops.status            # the table
    python -m ops.status --json     # the same as JSON, for scripts ({"ok": bool, "checks": [...]})

Servers (Kafka, Cassandra, MongoDB), the job (Spark UI), the producer (its metrics), the
newest batch and quality row, the quarantine rate, the Kafka lag, and the processes run by
ops.supervise (`make demo`): one that is down, crashed and waiting for its restart, fails the
status. Thresholds come from ALERT_* (docs/OPERATIONS.md). `scripts/stack.sh status` stays the
servers-only view.
"""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console
from rich.table import Table

from common.settings import SettingsError, load
from ops import health, supervise

SUPERVISED = "supervisor"  # the --only group of the supervised processes (ops.supervise)
STYLE = {"ok": "green", "warn": "yellow", "off": "dim", "down": "bold red", "stale": "bold red"}


def table(checks: list[health.Check]) -> Table:
    ok = not any(c.failing for c in checks)
    out = Table(
        title="pipeline status: " + ("[green]healthy[/]" if ok else "[bold red]NOT healthy[/]"),
        title_justify="left",
        show_lines=False,
    )
    out.add_column("component")
    out.add_column("check")
    out.add_column("state")
    out.add_column("detail", overflow="fold")
    for c in checks:
        out.add_row(c.component, c.name, f"[{STYLE.get(c.state, '')}]{c.state}[/]", c.detail)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.status", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted([*health.GROUPS, SUPERVISED]),
        help="run only these groups of checks (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The clients log every refused connection; the table carries the one-line reason.
    for noisy in ("kafka", "cassandra", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        settings = load()
        health.Thresholds.from_env(
            health.env_of(settings)
        )  # invalid thresholds: one line, before any request
        groups = [g for g in args.only or health.GROUPS if g != SUPERVISED]
        checks = health.collect(settings, groups) if groups else []
        if not args.only or SUPERVISED in args.only:
            checks += [
                supervise.status_check(st) for st in supervise.states(settings.stack.stack_dir / "supervise")
            ]
    except SettingsError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(health.to_json(checks))
    else:
        Console().print(table(checks))
    return 1 if any(c.failing for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
