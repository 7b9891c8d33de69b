"""Either side of a job's driver dying ends the other: its Python process and its driver JVM.

    spark = spark_session(...)
    lifeline.install(spark)

Under `scripts/spark-submit.sh` (local or client mode) the driver JVM is the parent of the
job's Python process: `spark-submit.sh` (exec) -> java SparkSubmit -> python jobs/....py,
which talks to the JVM through py4j. Started by plain `python`, pyspark launches the JVM as
a child instead. Either way:

- JVM gone -> Python ends. When the JVM dies (SIGKILL, a heap OutOfMemoryError: the driver
  runs with -XX:+ExitOnOutOfMemoryError, see scripts/spark-submit.sh) or exits on SIGTERM,
  nothing tells the Python side: a process sleeping or blocked outside py4j stays alive,
  reparented to init, and one with worker threads retrying against the dead gateway can
  spend many minutes in interpreter shutdown. Here the kernel kills it when its parent
  goes (PR_SET_PDEATHSIG, Linux), and a daemon thread checks every `poll_s` that the JVM is
  still there (the parent pid did not change, or the child JVM has not exited) and ends the
  process with `os._exit(EXIT_JVM_GONE)` otherwise, even in the middle of interpreter
  shutdown.
- Python gone -> JVM ends. Spark already does it: SparkSubmit waits for its Python child and
  exits with its code; a JVM launched by pyspark exits when its stdin (a pipe from Python)
  closes. tests/e2e/test_lifeline.py checks both directions on a real job.

Nothing is lost by ending the Python side abruptly: the job is exactly-once through its
checkpoint, and its supervisor (ops.supervise) restarts it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXIT_JVM_GONE = 4  # the Python side ended because its driver JVM is gone (3: a hung sink)
POLL_S = 1.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class Lifeline:
    """What the watcher watches: `jvm_pid`, and how it knows the JVM is still there."""

    jvm_pid: int
    how: str  # "parent" (spark-submit started us) or "child" (pyspark started the JVM)
    pdeathsig: bool  # the kernel kills us when the parent goes (Linux)
    thread: threading.Thread


def _process_name(pid: int) -> str | None:
    """The command name of `pid` (Linux /proc), None where /proc is not available."""
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent exits (Linux only).

    False where prctl is not available (macOS, a libc without it): the watcher thread then
    is the only lifeline.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
            return False
    except (OSError, AttributeError) as exc:
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)
        return False
    return True


def _gone(jvm_pid: int, reason: str) -> None:
    # stderr directly and os._exit: logging handlers and interpreter shutdown may be blocked
    # by the very threads that wait on the dead JVM.
    with contextlib.suppress(Exception):
        os.write(2, f"lifeline: the driver JVM (pid {jvm_pid}) is gone ({reason}): exiting\n".encode())
    os._exit(EXIT_JVM_GONE)


def _watch(alive: Callable[[], str | None], jvm_pid: int, poll_s: float) -> None:
    while True:
        reason = alive()
        if reason is not None:
            _gone(jvm_pid, reason)
        threading.Event().wait(poll_s)


def install(spark: Any = None, poll_s: float = POLL_S, death_signal: bool = True) -> Lifeline | None:
    """Tie this Python process to its driver JVM (see the module's doc); call it once, right
    after the SparkSession is created. `spark` is only needed when pyspark launched the JVM.
    None when the parent is not a JVM (a notebook or a tool that set PYSPARK_GATEWAY_PORT).
    `death_signal=False` leaves the watcher thread alone (what runs where prctl does not)."""
    # Process plumbing, not a setting: spark-submit sets it for the Python driver it starts.
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # spark-submit launched us: the JVM should be our parent.
        jvm_pid = os.getppid()
        name = _process_name(jvm_pid)
        if name not in (None, "java"):
            log.warning("lifeline: our parent (pid %d) is %s, not the driver JVM: not watched", jvm_pid, name)
            return None
        # The death signal first, then the parent again: a JVM that died in between has
        # already reparented us, and the kernel would never send the signal.
        pdeathsig = death_signal and set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != jvm_pid:
            _gone(jvm_pid, f"reparented to pid {os.getppid()} during start-up")

        def alive() -> str | None:
            parent = os.getppid()
            return None if parent == jvm_pid else f"reparented to pid {parent}"

        how = "parent"
    else:
        proc: subprocess.Popen[bytes] | None = getattr(
            getattr(getattr(spark, "sparkContext", None), "_gateway", None), "proc", None
        )
        if proc is None:
            raise RuntimeError("lifeline: no driver JVM to watch (pass the SparkSession pyspark started)")
        child = proc
        jvm_pid, pdeathsig, how = child.pid, False, "child"

        def alive() -> str | None:
            code = child.poll()
            return None if code is None else f"exited with code {code}"

    thread = threading.Thread(target=_watch, args=(alive, jvm_pid, poll_s), name="lifeline", daemon=True)
    thread.start()
    log.info(
        "lifeline: watching the driver JVM (pid %d, our %s) every %.1fs%s",
        jvm_pid,
        how,
        poll_s,
        "; parent death signal set" if pdeathsig else "",
    )
    return Lifeline(jvm_pid, how, pdeathsig, thread)
