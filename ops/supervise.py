"""Run a process and restart it when it crashes, with exponential backoff, until it keeps crashing.

    python -m ops.supervise NAME [options] -- CMD [ARGS...]

- exit code 0: the process finished on purpose (e.g. an --available-now job): no restart;
- any other exit: restart after BACKOFF * 2^(n-1) seconds (capped at --max-backoff), with an
  alert (ops.alerts channels) for each restart;
- a run that lasted --reset-after seconds counts as healthy again: the crash count restarts;
- after --max-restarts crashes in a row the supervisor gives up, says why (exit codes and the
  last lines of the process's output), raises a critical alert and exits 1;
- SIGTERM/SIGINT are forwarded to the whole process group and end the supervision (the job
  finishes its batch gracefully: see jobs/stream_users.py).

The state (`STACK_DIR/supervise/NAME.json`) is what `ops.monitor`'s restart rule reads. In
production, systemd (`Restart=on-failure`, `RestartSec`, `StartLimitBurst`) does the same:
docs/OPERATIONS.md has a unit file.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from common.settings import SettingsError, load
from ops import alerts, health

log = logging.getLogger(__name__)

TAIL_LINES = 20


@dataclass
class State:
    name: str
    command: list[str]
    pid: int | None = None
    started_at: str | None = None
    restarts: int = 0  # crashes in a row (reset after a long enough run)
    total_restarts: int = 0
    last_exit: int | None = None
    exits: list[int] = field(default_factory=list)
    gave_up: bool = False
    reason: str = ""


@dataclass
class Policy:
    max_restarts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    reset_after_s: float = 300.0

    def delay(self, restarts: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** max(0, restarts - 1))


class Supervisor:
    def __init__(
        self,
        name: str,
        command: list[str],
        policy: Policy,
        state_dir: Path,
        channels: list[alerts.Channel],
        store: alerts.AlertStore | None,
        log_path: Path | None = None,
    ) -> None:
        self.state = State(name, command)
        self.policy = policy
        self.state_file = state_dir / f"{name}.json"
        self.channels = channels
        self.store = store
        self.log_path = log_path
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=2), encoding="utf-8")
        tmp.replace(self.state_file)

    def _alert(self, severity: str, state: str, summary: str) -> None:
        rule = f"restarts:{self.state.name}" if state == "firing" else f"restart:{self.state.name}"
        alert = alerts.Alert(rule, severity, state, summary, details=asdict(self.state))
        alerts.dispatch(alert, self.channels, self.store)

    def _run_child(self) -> int:
        """Start the command in its own process group, copy its output, return its exit code."""
        out = self.log_path.open("ab") if self.log_path else None
        try:
            self.child = subprocess.Popen(
                self.state.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
            )
            self.state.pid = self.child.pid
            self.state.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self._save()
            assert self.child.stdout is not None
            for line in self.child.stdout:
                self.tail.append(line.decode(errors="replace").rstrip())
                if out is not None:
                    out.write(line)
                    out.flush()
                else:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
            return self.child.wait()
        finally:
            if out is not None:
                out.close()

    def stop(self, signum: int) -> None:
        self.stopping.set()
        if self.child is not None and self.child.poll() is None:
            log.info("%s: forwarding signal %d to process group %d", self.state.name, signum, self.child.pid)
            os.killpg(self.child.pid, signum)

    def run(self) -> int:
        while True:
            started = time.monotonic()
            try:
                code = self._run_child()
            except OSError as exc:  # the command cannot even start: restarting will not help
                self.state.gave_up, self.state.reason = True, f"cannot start {self.state.command[0]}: {exc}"
                self._save()
                self._alert("critical", "firing", f"{self.state.name}: {self.state.reason}")
                return 1
            lasted = time.monotonic() - started
            self.state.last_exit, self.state.pid = code, None
            if self.stopping.is_set():
                log.info("%s stopped (exit %d)", self.state.name, code)
                self._save()
                return code
            if code == 0:
                log.info("%s finished (exit 0): not restarting", self.state.name)
                self._save()
                return 0
            if lasted >= self.policy.reset_after_s:
                self.state.restarts, self.state.exits = 0, []
            self.state.restarts += 1
            self.state.exits.append(code)
            if self.state.restarts > self.policy.max_restarts:
                last = " | ".join(list(self.tail)[-5:])
                self.state.gave_up = True
                self.state.reason = (
                    f"crashed {self.state.restarts} times in a row (exit codes {self.state.exits}), "
                    f"each within {self.policy.reset_after_s:.0f}s of its start; last output: {last}"
                )
                self._save()
                log.error("%s: giving up: %s", self.state.name, self.state.reason)
                self._alert(
                    "critical", "firing", f"{self.state.name}: supervisor gave up: {self.state.reason}"
                )
                return 1
            self.state.total_restarts += 1
            delay = self.policy.delay(self.state.restarts)
            self._save()
            self._alert(
                "warning",
                "event",
                f"{self.state.name} exited {code} after {lasted:.0f}s; restart "
                f"{self.state.restarts}/{self.policy.max_restarts} in {delay:.1f}s",
            )
            if self.stopping.wait(delay):
                return code


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if "--" not in raw:
        print("usage: python -m ops.supervise NAME [options] -- CMD [ARGS...]", file=sys.stderr)
        return 2
    split = raw.index("--")
    parser = argparse.ArgumentParser(prog="python -m ops.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--max-restarts", type=int, default=5, help="crashes in a row before giving up")
    parser.add_argument("--backoff", type=float, default=1.0, help="first delay, doubled each crash (s)")
    parser.add_argument("--max-backoff", type=float, default=60.0, help="longest delay (s)")
    parser.add_argument("--reset-after", type=float, default=300.0, help="a run this long resets the count")
    parser.add_argument("--log", type=Path, help="append the process's output here (default: stdout)")
    args = parser.parse_args(raw[:split])
    command = raw[split + 1 :]
    if not command:
        parser.error("no command after --")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervise: %(message)s")
    try:
        settings = load()
        env = health.env_of(settings)
        channels = alerts.channels_from_env(env)
        store = alerts.AlertStore(alerts.alert_file(env, settings.stack.stack_dir))
        state_dir = settings.stack.stack_dir / "supervise"
    except SettingsError as exc:
        print(f"supervise: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor(
        args.name,
        command,
        Policy(args.max_restarts, args.backoff, args.max_backoff, args.reset_after),
        state_dir,
        channels,
        store,
        args.log,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        supervisor.stop(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
