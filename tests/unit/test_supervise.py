"""ops.supervise on real processes: restart without end, capped backoff, one alert per streak.

The supervised process is tests/unit/crashy_process.py, which crashes (or runs, or finishes)
as each test's plan says; the supervisor, the alert file and `ops.status` are the real ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ops import alerts, supervise

CRASHY = Path(__file__).with_name("crashy_process.py")
ROOT = Path(__file__).resolve().parents[2]


def crashy(tmp_path: Path, plan: str) -> list[str]:
    return [sys.executable, str(CRASHY), str(tmp_path / "runs"), plan]


def runs(tmp_path: Path) -> int:
    counter = tmp_path / "runs"
    return int(counter.read_text()) if counter.exists() else 0


def supervisor(tmp_path: Path, command: list[str], **policy: Any) -> supervise.Supervisor:
    defaults: dict[str, Any] = {
        "alert_after": 3,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "reset_after_s": 300,
    }
    return supervise.Supervisor(
        "crashy",
        command,
        supervise.Policy(**{**defaults, **policy}),
        tmp_path / "supervise",
        alerts.channels_from_env({}),
        alerts.AlertStore(tmp_path / "alerts.json"),
        tmp_path / "crashy.log",
    )


def state(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "supervise" / "crashy.json").read_text())


def history(tmp_path: Path) -> list[tuple[str, str]]:
    return [(h["rule"], h["state"]) for h in json.loads((tmp_path / "alerts.json").read_text())["history"]]


def wait_for(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


EVENT, FIRING, RESOLVED = (
    ("restart:crashy", "event"),
    ("restarts:crashy", "firing"),
    ("restarts:crashy", "resolved"),
)


def test_backoff_doubles_from_the_first_delay_up_to_the_cap_and_stays_there() -> None:
    policy = supervise.Policy(backoff_s=5, max_backoff_s=60)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6, 100, 10_000)] == [5, 10, 20, 40, 60, 60, 60, 60]


def test_a_process_that_keeps_crashing_is_restarted_without_end_with_one_alert(tmp_path: Path) -> None:
    # 25 crashes in a row (the old supervisor gave up after 5), then it finishes on purpose.
    sup = supervisor(tmp_path, crashy(tmp_path, "exit:3," * 25 + "exit:0"))

    assert sup.run() == 0

    assert runs(tmp_path) == 26
    s = state(tmp_path)
    assert {k: s[k] for k in ("status", "restarts", "total_restarts", "last_exit", "exits", "alerting")} == {
        "status": "finished",
        "restarts": 25,
        "total_restarts": 25,
        "last_exit": 0,
        "exits": [3] * supervise.KEEP_EXITS,
        "alerting": True,
    }
    assert history(tmp_path) == [EVENT] * 3 + [FIRING] + [EVENT] * 22
    firing = json.loads((tmp_path / "alerts.json").read_text())["active"]["restarts:crashy"]
    assert firing["summary"].startswith("crashy is down: crashed 3 times in a row (exit codes [3, 3, 3]);")
    assert "last output: run 3: exit:3" in firing["summary"]
    assert (tmp_path / "crashy.log").read_text() == "".join(f"run {n}: exit:3\n" for n in range(1, 26)) + (
        "run 26: exit:0\n"
    )


def test_a_healthy_run_resolves_the_alert_once_and_starts_the_count_over(tmp_path: Path) -> None:
    # Five crashes (alert at the third), a run longer than reset_after (healthy: resolved
    # while it still runs), then a new streak of two crashes (below the threshold), then done.
    plan = "exit:3,exit:3,exit:3,exit:3,exit:3,sleep:1.5:4,exit:5,exit:0"
    sup = supervisor(tmp_path, crashy(tmp_path, plan), reset_after_s=0.8)

    assert sup.run() == 0

    assert runs(tmp_path) == 8
    assert history(tmp_path) == [EVENT] * 3 + [FIRING] + [EVENT] * 2 + [RESOLVED] + [EVENT] * 2
    stored = json.loads((tmp_path / "alerts.json").read_text())
    assert stored["active"] == {}
    resolved = next(h for h in stored["history"] if h["state"] == "resolved")
    assert resolved["summary"] == "crashy recovered: running for 1s after 5 crashes in a row"
    s = state(tmp_path)
    assert (s["status"], s["restarts"], s["total_restarts"], s["exits"], s["alerting"]) == (
        "finished",
        2,
        7,
        [4, 5],
        False,
    )


def test_an_alert_already_raised_by_the_monitor_is_not_notified_again(tmp_path: Path) -> None:
    store = alerts.AlertStore(tmp_path / "alerts.json")
    store.record(alerts.Alert("restarts:crashy", "critical", "firing", "mirrored by the monitor"))
    sup = supervisor(tmp_path, crashy(tmp_path, "exit:1,exit:1,exit:1,exit:0"))

    assert sup.run() == 0

    assert history(tmp_path) == [FIRING] + [EVENT] * 3  # the monitor's, then no second one
    assert state(tmp_path)["alerting"] is True


def test_a_command_that_cannot_start_is_retried_too(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, [str(tmp_path / "not-there")])
    thread = threading.Thread(target=sup.run)
    thread.start()
    try:
        wait_for(
            lambda: (tmp_path / "supervise" / "crashy.json").exists() and state(tmp_path)["restarts"] >= 4,
            "4 tries",
        )
    finally:
        sup.stop(signal.SIGTERM)
        thread.join(timeout=10)
    assert not thread.is_alive()
    s = state(tmp_path)
    assert (s["status"], s["exits"][:4], s["alerting"]) == ("stopped", [127] * 4, True)
    assert s["reason"].startswith("exit 127 after 0s; last output: cannot start ")
    assert "No such file or directory" in s["reason"]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("ALERT_WEBHOOK_URL", "ALERT_SMTP_HOST", "ALERT_FILE", "ALERT_MAX_RESTARTS"):
        env.pop(key, None)
    env.update(STACK_DIR=str(tmp_path / "stack"), PYTHONPATH=str(ROOT))
    return env


def status(tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    """`ops.status --only supervisor --json`: its exit code and checks."""
    out = subprocess.run(
        [sys.executable, "-m", "ops.status", "--only", "supervisor", "--json"],
        cwd=ROOT,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)["checks"]


def test_the_cli_keeps_restarting_and_status_fails_while_the_process_is_down(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    state_file = stack / "supervise" / "crashy.json"

    def supervised() -> dict[str, Any]:
        return json.loads(state_file.read_text()) if state_file.exists() else {}

    # Ten crashes in a row (the old supervisor gave up after 5), down for 0.01 s after the
    # first, doubling to 5.12 s after the tenth; then a long run.
    with (tmp_path / "supervise.log").open("wb") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "ops.supervise", "crashy", "--backoff", "0.01", "--max-backoff", "6"),
                *(
                    "--log",
                    str(tmp_path / "crashy.log"),
                    "--",
                    *crashy(tmp_path, "exit:2," * 10 + "sleep:60:0"),
                ),
            ],
            cwd=ROOT,
            env=cli_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for(
            lambda: supervised().get("restarts") == 10 and supervised().get("status") == "down", "crash 10"
        )
        code, checks = status(tmp_path)
        assert code == 1
        (check,) = checks
        assert (check["component"], check["name"], check["state"]) == ("supervisor", "crashy", "down")
        assert check["detail"].startswith("DOWN since ")
        assert "crashed 10 times in a row (exit codes [2, 2, 2, 2, 2])" in check["detail"]
        assert proc.poll() is None  # never given up

        wait_for(lambda: supervised().get("status") == "running", "the 11th run", timeout=10)
        code, checks = status(tmp_path)
        assert (code, checks[0]["state"]) == (0, "warn")  # up again, not yet healthy
        assert checks[0]["detail"].startswith("running again (pid ")

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # forwarded to the process: it stops at once
        assert proc.wait(timeout=20) == 143
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert runs(tmp_path) == 11
    code, checks = status(tmp_path)
    assert (code, checks[0]["state"], checks[0]["detail"]) == (
        0,
        "off",
        "stopped (exit 143): not supervised now",
    )
    stored = json.loads((stack / "alerts.json").read_text())
    assert [(h["rule"], h["state"]) for h in stored["history"]] == [EVENT] * 3 + [FIRING] + [EVENT] * 7
    assert list(stored["active"]) == ["restarts:crashy"]  # stopped while still down: not recovered


def test_status_says_down_when_the_supervisor_itself_is_gone(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    folder = tmp_path / "stack" / "supervise"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(
        json.dumps(
            {"name": "job", "status": "running", "supervisor_pid": int(dead.stdout), "pid": 1, "restarts": 0}
        )
    )
    code, checks = status(tmp_path)
    assert code == 1
    assert [(c["name"], c["state"]) for c in checks] == [("job", "down")]
    assert checks[0]["detail"].startswith(
        f"its supervisor (pid {int(dead.stdout)}) is gone without stopping it"
    )


def test_the_cli_refuses_a_missing_command_or_a_zero_alert_threshold() -> None:
    assert supervise.main(["job"]) == 2
    with pytest.raises(SystemExit) as exc:
        supervise.main(["job", "--alert-after", "0", "--", "true"])
    assert exc.value.code == 2
