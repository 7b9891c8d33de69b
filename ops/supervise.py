"""Run a process and restart it whenever it crashes, for as long as it is supervised.

    python -m ops.supervise NAME [options] -- CMD [ARGS...]

A streaming job is never given up for good: a server that stays down for an hour must not
leave the pipeline stopped once it is back.

- exit code 0: the process finished on purpose (e.g. an --available-now job): no restart;
- any other exit (or a command that cannot start): restart after BACKOFF * 2^(n-1) seconds,
  capped at --max-backoff, without end;
- a run that lasts --reset-after seconds is healthy: the crash count starts over;
- alerts (ops.alerts channels) once, not per crash: `restarts:NAME` fires (critical) after
  --alert-after crashes in a row (default ALERT_MAX_RESTARTS, 3), with the exit codes and the
  last lines of the output, and resolves once when the process has been healthy again; each
  crash is a line in the log and in the alert history;
- SIGTERM/SIGINT are forwarded to the whole process group and end the supervision (the job
  finishes its batch gracefully: see jobs/stream_users.py).

The state (`STACK_DIR/supervise/NAME.json`: running, down and restarting, stopped...) is what
`ops.status` shows (a supervised process that is down fails it) and `ops.monitor` reads. In
production, systemd (`Restart=always`, `RestartSec`, `RestartSteps`, `RestartMaxDelaySec`) does
the same: docs/OPERATIONS.md has a unit file. supervisord was tried instead of this module and
not adopted: it gives up (FATAL after `startretries`), its backoff is linear and uncapped, and
it has no alerts (docs/OPERATIONS.md, "Why ops.supervise and not supervisord").
"""

from __future__ import annotations

import argparse
import collections
import contextlib
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
from typing import Any

from common import stopping
from common.settings import SettingsError, load
from ops import alerts, health

log = logging.getLogger(__name__)

TAIL_LINES = 20
KEEP_EXITS = 20  # exit codes kept in the state (the crash count itself is unbounded)
EXIT_CANNOT_START = 127  # the shell's code for a command that cannot be run

# Supervisor states (State.status).
STARTING, RUNNING, DOWN, STOPPED, FINISHED = "starting", "running", "down", "stopped", "finished"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class State:
    name: str
    command: list[str]
    supervisor_pid: int = field(default_factory=os.getpid)
    status: str = STARTING  # starting | running | down (waiting to restart) | stopped | finished
    pid: int | None = None
    started_at: str | None = None
    restarts: int = 0  # crashes in a row (reset after a healthy run)
    total_restarts: int = 0
    last_exit: int | None = None
    exits: list[int] = field(default_factory=list)  # the last KEEP_EXITS exit codes of this streak
    down_since: str | None = None  # first crash of this streak
    next_start_at: str | None = None  # while down
    alerting: bool = False  # `restarts:NAME` fired for this streak and is not resolved yet
    reset_after_s: float = 300.0
    reason: str = ""  # the last crash: exit code and last output lines


@dataclass
class Policy:
    alert_after: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    reset_after_s: float = 300.0

    def delay(self, restarts: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** min(max(0, restarts - 1), 62))


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
        self.state = State(name, command, reset_after_s=policy.reset_after_s)
        self.policy = policy
        self.state_file = state_dir / f"{name}.json"
        self.channels = channels
        self.store = store
        self.log_path = log_path
        self.stopping = stopping.Stop()
        self.child: subprocess.Popen[bytes] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    @property
    def rule(self) -> str:
        return f"restarts:{self.state.name}"

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self.state), indent=2), encoding="utf-8")
        tmp.replace(self.state_file)

    def _notify(self, alert: alerts.Alert) -> None:
        """Record the alert; notify the channels only when it changes what is active (the
        monitor mirrors this rule from the state file and may have recorded it already)."""
        if self.store is None or self.store.change(alert):
            alerts.dispatch(alert, self.channels, None)

    def _event(self, summary: str) -> None:
        """One crash: the log and the alert history, no notification (that is the alert's job)."""
        event = alerts.Alert(
            f"restart:{self.state.name}", "warning", "event", summary, details=asdict(self.state)
        )
        alerts.dispatch(event, [c for c in self.channels if c.name == "log"], self.store)

    def _pump(self, stdout: Any) -> None:
        out = self.log_path.open("ab") if self.log_path else None
        try:
            for line in stdout:
                self.tail.append(line.decode(errors="replace").rstrip())
                if out is not None:
                    out.write(line)
                    out.flush()
                else:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
        finally:
            if out is not None:
                out.close()

    def _healthy(self) -> None:
        """The process has run --reset-after seconds: the streak is over."""
        s = self.state
        if s.restarts == 0:
            return
        crashes, was_alerting = s.restarts, s.alerting
        s.restarts, s.exits, s.down_since, s.alerting = 0, [], None, False
        self._save()  # first the state (the monitor stops mirroring), then the alert
        log.info("%s healthy again after %d crash(es) in a row", s.name, crashes)
        if was_alerting:
            self._notify(
                alerts.Alert(
                    self.rule,
                    "critical",
                    "resolved",
                    f"{s.name} recovered: running for {self.policy.reset_after_s:.0f}s after {crashes} "
                    "crashes in a row",
                    details=asdict(s),
                )
            )

    def _run_child(self) -> int:
        """Start the command in its own process group, copy its output, return its exit code."""
        self.child = subprocess.Popen(
            self.state.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.stopping.is_set():  # a signal came while it was being started
            self.stop(signal.SIGTERM)
        s = self.state
        s.status, s.pid, s.started_at, s.next_start_at = RUNNING, self.child.pid, _now(), None
        self._save()
        pump = threading.Thread(target=self._pump, args=(self.child.stdout,), name="output", daemon=True)
        pump.start()
        try:
            code = self.child.wait(timeout=self.policy.reset_after_s)
        except subprocess.TimeoutExpired:
            self._healthy()
            code = self.child.wait()
        pump.join(timeout=10)  # the rest of the output (a grandchild may keep the pipe open)
        return code

    def stop(self, signum: int) -> None:
        """Forward `signum` to the child's process group and end the supervision (safe in a
        signal handler: common/stopping.py)."""
        self.stopping.request(signum)
        if self.child is not None and self.child.poll() is None:
            log.info("%s: forwarding signal %d to process group %d", self.state.name, signum, self.child.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signum)

    def _crashed(self, code: int, lasted: float) -> float:
        """Count one crash, alert when it makes --alert-after in a row; returns the delay."""
        s = self.state
        if lasted >= self.policy.reset_after_s:  # the timer may not have run (exact limit)
            s.restarts, s.exits, s.down_since = 0, [], None
        s.restarts += 1
        s.total_restarts += 1
        s.exits = [*s.exits, code][-KEEP_EXITS:]
        s.down_since = s.down_since or _now()
        delay = self.policy.delay(s.restarts)
        s.status, s.pid = DOWN, None
        s.next_start_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)).isoformat(
            timespec="seconds"
        )
        last = " | ".join(list(self.tail)[-5:])
        s.reason = f"exit {code} after {lasted:.0f}s; last output: {last or '(none)'}"
        self._event(
            f"{s.name} exited {code} after {lasted:.0f}s (crash {s.restarts} in a row); "
            f"restart in {delay:.1f}s"
        )
        if s.restarts >= self.policy.alert_after and not s.alerting:
            # First the alert, then the state that says so: the monitor, which mirrors the
            # rule from the state, then always finds it active and does not notify again.
            self._notify(
                alerts.Alert(
                    self.rule,
                    "critical",
                    "firing",
                    f"{s.name} is down: crashed {s.restarts} times in a row (exit codes {s.exits[-5:]}); "
                    f"restarting with backoff up to {self.policy.max_backoff_s:.0f}s; {s.reason}",
                    details=asdict(s),
                )
            )
            s.alerting = True
        self._save()
        return delay

    def run(self) -> int:
        self._save()
        while not self.stopping.is_set():
            started = time.monotonic()
            self.tail.clear()
            try:
                code = self._run_child()
            except OSError as exc:  # cannot start (yet): a missing file may come back, retry
                self.tail.append(f"cannot start {self.state.command[0]}: {exc}")
                code = EXIT_CANNOT_START
            lasted = time.monotonic() - started
            self.state.last_exit, self.state.pid = code, None
            if self.stopping.is_set():
                log.info("%s stopped (exit %d)", self.state.name, code)
                self.state.status = STOPPED
                self._save()
                return code
            if code == 0:
                log.info("%s finished (exit 0): not restarting", self.state.name)
                self.state.status = FINISHED
                self._save()
                return 0
            delay = self._crashed(code, lasted)
            self.stopping.wait(delay)
        self.state.status, self.state.next_start_at = STOPPED, None
        self._save()
        return self.state.last_exit or 0


def supervisor_alive(state: dict[str, Any]) -> bool:
    pid = state.get("supervisor_pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def status_check(state: dict[str, Any]) -> health.Check:
    """One `ops.status` line for a supervised process: `down` (failing) while it is not running
    and should be (crashed and waiting to restart, or its supervisor is gone)."""
    name = str(state.get("name", "?"))
    status = state.get("status")
    restarts = int(state.get("restarts") or 0)
    exits = state.get("exits") or []
    data = {k: state.get(k) for k in ("status", "pid", "restarts", "total_restarts", "last_exit", "alerting")}
    if status in (STOPPED, FINISHED):
        return health.Check(
            "supervisor", name, "off", f"{status} (exit {state.get('last_exit')}): not supervised now", data
        )
    if not supervisor_alive(state):
        return health.Check(
            "supervisor",
            name,
            "down",
            f"its supervisor (pid {state.get('supervisor_pid')}) is gone without stopping it: nothing "
            "restarts it (`make demo` starts it again)",
            data,
        )
    if status == DOWN:
        return health.Check(
            "supervisor",
            name,
            "down",
            f"DOWN since {state.get('down_since')}: crashed {restarts} times in a row (exit codes "
            f"{exits[-5:]}), next start at {state.get('next_start_at')}; {state.get('reason', '')}"[:400],
            data,
        )
    if restarts:
        return health.Check(
            "supervisor",
            name,
            "warn",
            f"running again (pid {state.get('pid')}) since {state.get('started_at')} after "
            f"{restarts} crash(es) in a row; healthy after {float(state.get('reset_after_s') or 0):.0f}s",
            data,
        )
    return health.Check(
        "supervisor",
        name,
        "ok",
        f"running (pid {state.get('pid')}) since {state.get('started_at')}, "
        f"{int(state.get('total_restarts') or 0)} restart(s) in all",
        data,
    )


def states(folder: Path) -> list[dict[str, Any]]:
    """The state files of the supervisors, one per supervised process (unreadable: skipped)."""
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            log.warning("unreadable supervisor state %s: %s", path, exc)
    return found


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if "--" not in raw:
        print("usage: python -m ops.supervise NAME [options] -- CMD [ARGS...]", file=sys.stderr)
        return 2
    split = raw.index("--")
    doc = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m ops.supervise", description=doc)
    parser.add_argument("name")
    parser.add_argument(
        "--alert-after", type=int, help="crashes in a row before alerting (default: ALERT_MAX_RESTARTS, 3)"
    )
    parser.add_argument("--backoff", type=float, default=1.0, help="first delay, doubled each crash (s)")
    parser.add_argument("--max-backoff", type=float, default=60.0, help="longest delay (s)")
    parser.add_argument(
        "--reset-after", type=float, default=300.0, help="a run this long is healthy again (s)"
    )
    parser.add_argument("--log", type=Path, help="append the process's output here (default: stdout)")
    args = parser.parse_args(raw[:split])
    command = raw[split + 1 :]
    if not command:
        parser.error("no command after --")
    if args.alert_after is not None and args.alert_after < 1:
        parser.error("--alert-after must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervise: %(message)s")
    try:
        settings = load()
        env = health.env_of(settings)
        alert_after = args.alert_after or max(1, int(health.Thresholds.from_env(env).max_restarts))
        channels = alerts.channels_from_env(env)
        store = alerts.AlertStore(alerts.alert_file(env, settings.stack.stack_dir))
        state_dir = settings.stack.stack_dir / "supervise"
    except SettingsError as exc:
        print(f"supervise: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor(
        args.name,
        command,
        Policy(alert_after, args.backoff, args.max_backoff, args.reset_after),
        state_dir,
        channels,
        store,
        args.log,
    )

    stopping.install(supervisor.stopping, log, on_signal=supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
