"""A process that crashes on demand, for the supervisor's tests (tests/unit/test_supervise.py).

    python crashy_process.py COUNTER PLAN

Each run adds one to the number in the file COUNTER and follows the step of PLAN for that
run (the last step repeats): `exit:CODE` exits at once with CODE after one line of output,
`sleep:SECONDS:CODE` sleeps first (SIGTERM ends the sleep with code 143).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path


def main() -> int:
    counter, plan = Path(sys.argv[1]), sys.argv[2].split(",")
    run = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(run + 1))
    step = plan[min(run, len(plan) - 1)].split(":")
    print(f"run {run + 1}: {':'.join(step)}", flush=True)
    if step[0] == "sleep":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        time.sleep(float(step[1]))
    return int(step[-1])


if __name__ == "__main__":
    sys.exit(main())
