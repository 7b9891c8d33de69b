"""Either side of a driver dying ends the other (jobs/lifeline.py), on real Spark processes.

A tiny driver (tests/e2e/lifeline_job.py) is submitted exactly as the jobs are, through
scripts/spark-submit.sh: spark-submit.sh (exec) -> java SparkSubmit -> python. It blocks in
the JVM like `awaitTermination` and keeps a non-daemon thread calling the JVM like the sink
lanes, so without the lifeline its Python side outlives a dead JVM (the control test shows
it). No server is needed; `spark.jars.packages=` skips the jar resolution.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs import lifeline
from tests.e2e.conftest import ROOT

START_TIMEOUT_S = 180.0
GONE_WITHIN_S = 10.0


@dataclass
class Driver:
    proc: subprocess.Popen[bytes]  # spark-submit.sh, which exec'ed into the driver JVM
    python_pid: int
    log: Path

    @property
    def jvm_pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_gone(pids: list[int], within: float) -> float:
    """Seconds until every pid is gone; fails naming those still alive after `within`."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if not any(alive(p) for p in pids):
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"still alive after {within:.0f}s: {[p for p in pids if alive(p)]}")


@pytest.fixture
def submit(tmp_path: Path) -> Iterator[Callable[..., Driver]]:
    started: list[Driver] = []

    def start(*job_args: str, driver_memory: str = "512m") -> Driver:
        log = tmp_path / f"driver-{len(started)}.log"
        env = dict(os.environ, STACK_DIR=str(tmp_path / "stack"))
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(ROOT / "scripts" / "spark-submit.sh"),
                    "--driver-memory",
                    driver_memory,
                    "--conf",
                    "spark.jars.packages=",
                    "--conf",
                    "spark.sql.extensions=",
                    "--conf",
                    "spark.ui.enabled=false",
                    str(ROOT / "tests" / "e2e" / "lifeline_job.py"),
                    *job_args,
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            ready = [
                line for line in log.read_text(errors="replace").splitlines() if line.startswith("ready ")
            ]
            if ready:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the driver did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        _, python_pid, parent = ready[0].split()
        driver = Driver(proc, int(python_pid), log)
        started.append(driver)
        # The tree the lifeline relies on: the Python driver is the JVM's child.
        assert int(parent) == proc.pid and Path(f"/proc/{proc.pid}/comm").read_text().strip() == "java"
        return driver

    yield start
    for d in started:  # whatever a failed test left running, ours only
        for pid in (d.python_pid, d.jvm_pid):
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            d.proc.wait(timeout=30)


def test_without_the_lifeline_python_outlives_a_killed_jvm(submit: Callable[..., Driver]) -> None:
    d = submit("--no-lifeline")
    os.kill(d.jvm_pid, signal.SIGKILL)
    assert d.proc.wait(timeout=30) == -signal.SIGKILL
    time.sleep(5)
    # Still there, reparented away from the dead JVM: what the lifeline is for.
    assert alive(d.python_pid) and parent_of(d.python_pid) != d.jvm_pid


@pytest.mark.parametrize("mode", [[], ["--watcher-only"]], ids=["death-signal", "watcher-thread"])
def test_python_ends_within_seconds_when_the_jvm_is_killed(
    submit: Callable[..., Driver], mode: list[str]
) -> None:
    d = submit(*mode)
    os.kill(d.jvm_pid, signal.SIGKILL)
    assert d.proc.wait(timeout=30) == -signal.SIGKILL
    took = wait_gone([d.python_pid], GONE_WITHIN_S)
    assert took < lifeline.POLL_S * 5


def test_sigterm_to_spark_submit_ends_both_within_seconds(submit: Callable[..., Driver]) -> None:
    d = submit()
    os.kill(d.jvm_pid, signal.SIGTERM)
    wait_gone([d.jvm_pid, d.python_pid], GONE_WITHIN_S)
    assert d.proc.wait(timeout=5) != 0


def test_the_jvm_ends_within_seconds_when_python_is_killed(submit: Callable[..., Driver]) -> None:
    d = submit()
    os.kill(d.python_pid, signal.SIGKILL)
    wait_gone([d.jvm_pid, d.python_pid], GONE_WITHIN_S)
    assert d.proc.wait(timeout=5) == 128 + signal.SIGKILL  # SparkSubmit exits with its Python's code


def test_a_heap_out_of_memory_error_ends_the_jvm_and_then_python(submit: Callable[..., Driver]) -> None:
    d = submit("--oom")  # 512 MB of heap, then a 1.6 GB array
    wait_gone([d.jvm_pid, d.python_pid], 60)
    assert d.proc.wait(timeout=5) == 3  # -XX:+ExitOnOutOfMemoryError
    text = d.text()
    assert "Terminating due to java.lang.OutOfMemoryError: Java heap space" in text
    assert "the JVM survived" not in text
