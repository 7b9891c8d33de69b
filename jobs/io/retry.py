"""Retries of sink writes, the stall guard, and the probe that tells a poison write from a
server that is down (jobs/poison_batches.py).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")


def one_line(exc: BaseException) -> str:
    """The first meaningful line of a (possibly Java) exception: for logs, not stack walls."""
    text = str(exc).strip()
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("at ", "Traceback", "File ")):
            return f"{type(exc).__name__}: {line[:300]}"
    return type(exc).__name__


STALL_EXIT_CODE = 3


def exit_on_stall(name: str, seconds: float) -> None:
    """Crash-only recovery from a hung sink: exit, let the supervisor restart the job.

    Some client calls have no timeout of their own (the Cassandra driver's schema refresh
    waits forever on a connection lost while a server restarted: apache/cassandra-java-driver
    JAVA-2546, scylladb/java-driver#343). The batch was not committed, so the restarted job
    runs it again, idempotently.
    """
    log.error(
        "sink %s stalled for %.0fs (hung client call): exiting with %d so the supervisor restarts the job",
        name,
        seconds,
        STALL_EXIT_CODE,
    )
    logging.shutdown()
    os._exit(STALL_EXIT_CODE)


@dataclass(frozen=True)
class HangCheck:
    """Tells a hung client call sooner than the stall timeout: no Spark job has run for
    `seconds` while the write is in flight, and every server answers.

    A write that works runs Spark jobs (its tasks); one that waits for a server that is down
    is legitimate: while a write runs no job, the servers are probed every `probe_every`
    seconds, and one that is down starts the count again. What is left is a client
    waiting for nothing: the Cassandra connector's schema refresh after a restart (see
    exit_on_stall) planned no job for ten minutes while Cassandra answered.
    """

    seconds: float
    busy: Callable[[], bool]  # a Spark job of this application is running
    servers_up: Callable[[], bool]
    interval: float = 5.0
    probe_every: float = 15.0


def _asks(question: Callable[[], bool], otherwise: bool) -> bool:
    """A hang check's question; `otherwise` (the answer that reports nothing) if it fails:
    the watcher must outlive a failed call (it also keeps the stall timeout)."""
    try:
        return question()
    except Exception as exc:
        log.warning("hang check: %s", one_line(exc))
        return otherwise


@contextmanager
def stall_guard(
    name: str,
    timeout: float | None,
    on_stall: Callable[[str, float], None],
    hang: HangCheck | None = None,
) -> Iterator[None]:
    """Call `on_stall(name, seconds)` once if the block neither returns nor fails within
    `timeout` s, or (with `hang`) when it looks hung by that check first."""
    if not timeout and hang is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        start = last_busy = last_probe = time.monotonic()
        while True:
            now = time.monotonic()
            left = (start + timeout - now) if timeout else None
            if left is not None and left <= 0:
                on_stall(name, timeout or 0.0)
                return
            wait = min(x for x in (left, hang.interval if hang else None) if x is not None)
            if done.wait(wait):
                return
            if hang is None:
                continue
            now = time.monotonic()
            if _asks(hang.busy, True):
                last_busy = now
                continue
            idle = now - last_busy
            if idle < hang.seconds and (idle < hang.probe_every or now - last_probe < hang.probe_every):
                continue
            last_probe = now
            if not _asks(hang.servers_up, False):  # waiting for a server that is down is no hang
                last_busy = now
            elif idle >= hang.seconds:
                log.error(
                    "sink %s: no Spark job ran for %.0fs of its write while every server answers: "
                    "the client call is hung",
                    name,
                    idle,
                )
                on_stall(name, now - start)
                return

    watcher = threading.Thread(target=watch, name=f"stall-guard-{name}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


def with_retries(
    name: str,
    action: Callable[[], T],
    *,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    stall_timeout: float | None = None,
    on_stall: Callable[[str, float], None] = exit_on_stall,
    failure_probe: FailureProbe | None = None,
    hang: HangCheck | None = None,
) -> T:
    """Run a sink write until it succeeds: a sink that is down stalls the stream, never skips data.

    A failing attempt is retried by tenacity, without end, after base_delay, 2x, 4x, ...
    capped at max_delay (no jitter: the job is the servers' one writer, waiting for them to
    come back, not contending with other clients); an attempt that neither fails nor returns
    within `stall_timeout` seconds calls `on_stall` (by default: exit for a restart), and
    so does one that the hang check (`hang`, else the one the job installed) finds hung.
    With a failure probe (`failure_probe`, else the one the job installed: see
    install_failure_probe), a write that fails the same way FailureProbe.after times in a
    row while every server answers is not retried further: its error is raised, for the
    batch to be counted as failed (jobs/poison_batches.py). Servers that are down are
    retried without end, as always.
    """
    probe = failure_probe or _installed.get("probe")
    hang = hang or _installed_hang.get("hang")
    if probe is not None:
        probe = probe.fresh()

    def retry(exc: BaseException) -> bool:
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, SystemExit: not a failed write
        # After identical failures with the servers up the data is at fault: to the batch.
        return probe is None or not probe.gives_up(name, exc)

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "sink %s failed (attempt %d), retrying in %.0fs: %s",
            name,
            state.attempt_number,
            state.upcoming_sleep,
            one_line(exc) if exc is not None else "?",
        )

    def attempt() -> T:
        with stall_guard(name, stall_timeout, on_stall, hang if stall_timeout else None):
            return action()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry),
        wait=tenacity.wait_exponential(multiplier=base_delay, max=max_delay),
        stop=tenacity.stop_never,
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    return retrying(attempt)


# Identical failures of one write in a row before the servers are probed.
SAME_FAILURES_BEFORE_PROBE = 3


_HEXISH = re.compile(r"\b[0-9A-Fa-f-]*[0-9][0-9A-Fa-f-]*\b")


def error_line(exc: BaseException) -> str:
    """The line that says what went wrong: for a Java error, its root cause ("Caused by: ..."
    last), not py4j's "An error occurred while calling o123.save"; else one_line."""
    text = str(exc)
    causes = [
        line.strip()[len("Caused by: ") :]
        for line in text.splitlines()
        if line.strip().startswith("Caused by: ")
    ]
    if causes:
        return causes[-1][:300]
    for raw in text.splitlines()[1:]:
        line = raw.strip()
        if line.startswith(": "):  # py4j: ": org.apache.spark.SparkException: ..."
            return line[2:][:300]
    return one_line(exc)


# Spark's error classes (Spark 3.5, error-classes.json) that blame a value of the data, never a
# server: the same records fail the same way on every attempt, so a write that fails with one
# is not tried again, and a batch or part it fails is not either (jobs/poison_batches.py). Only
# the root cause counts, and only as the class a Spark or Delta exception (Java's, or PySpark's
# copy of it) states at its start.
DATA_ERROR_CLASSES = (
    "INCONSISTENT_BEHAVIOR_CROSS_VERSION",  # e.g. WRITE_ANCIENT_DATETIME: a date before 1900 into Parquet
    "CAST_INVALID_INPUT",
    "CAST_OVERFLOW",
    "CAST_OVERFLOW_IN_TABLE_INSERT",
    "ARITHMETIC_OVERFLOW",
    "DIVIDE_BY_ZERO",
    "NUMERIC_VALUE_OUT_OF_RANGE",
    "DATETIME_OVERFLOW",
    "DELTA_NOT_NULL_CONSTRAINT_VIOLATED",
)
_DATA_ERROR = re.compile(
    r"^(?:org\.apache\.spark\.[\w.$]*?)?(?:Spark|Delta)\w*(?:Exception|Error): \[(?:"
    + "|".join(DATA_ERROR_CLASSES)
    + r")(?:\.[A-Z0-9_]+)?\]"
)


def data_error(line: str) -> bool:
    """True when an error line (error_line) is a Spark error that blames a value of the data."""
    return _DATA_ERROR.match(line) is not None


def error_signature(line: str) -> str:
    """What makes two failures "the same": their error line (error_line) without numbers, ids
    or paths' hashes."""
    return _HEXISH.sub("#", line)


class FailureProbe:
    """Counts identical failures of one write; after `after` of them asks `servers_up`.

    One instance per write (fresh()): the count belongs to one with_retries call.
    """

    def __init__(self, servers_up: Callable[[], bool], after: int = SAME_FAILURES_BEFORE_PROBE) -> None:
        self.servers_up = servers_up
        self.after = after
        self._last: str | None = None
        self._same = 0

    def fresh(self) -> FailureProbe:
        return FailureProbe(self.servers_up, self.after)

    def gives_up(self, name: str, exc: BaseException) -> bool:
        """True when `exc` is the after-th identical failure in a row, or the first one that
        blames the data (data_error), and the servers are up."""
        line = error_line(exc)
        signature = error_signature(line)
        self._same = self._same + 1 if signature == self._last else 1
        self._last = signature
        blames_data = data_error(line)
        if self._same < self.after and not blames_data:
            return False
        self._same = 0  # probe again after as many more
        if self.servers_up():
            log.error(
                "sink %s failed %s while every server answers: giving the error to the batch: %s",
                name,
                "with an error of its data" if blames_data else f"the same way {self.after} times",
                line,
            )
            return True
        log.warning("sink %s: a server is down, retrying without end: %s", name, line)
        return False


_installed: dict[str, FailureProbe] = {}
_installed_hang: dict[str, HangCheck] = {}


def install_hang_check(check: HangCheck | None) -> None:
    """The hang check every guarded with_retries of this process uses (None: the stall timeout only)."""
    if check is None:
        _installed_hang.pop("hang", None)
    else:
        _installed_hang["hang"] = check


def install_failure_probe(probe: FailureProbe | None) -> None:
    """The probe every with_retries of this process uses (None: retry everything forever)."""
    if probe is None:
        _installed.pop("probe", None)
    else:
        _installed["probe"] = probe
