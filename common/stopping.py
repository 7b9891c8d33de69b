"""Stopping a long-running process on SIGTERM/SIGINT, safely.

A Python signal handler runs in the main thread between two bytecodes. When the main thread
is inside `threading.Event.wait()` it may hold the event's lock (a plain, non-reentrant
Lock) for a few instructions; a handler that calls `event.set()` right then waits for that
lock forever, and the process never stops (it ignores every later SIGTERM too). The
producer waits on its event fifty times a second, the job and the supervisors twice, so
over enough stops it happens. `Stop` is set from the handler without touching the lock:
the handler records the request in a plain attribute and a short-lived thread sets the
event, which wakes whoever waits on it once the main thread has released the lock.

`install()` also registers faulthandler on SIGUSR1: `kill -USR1 PID` prints the stack of
every thread of a process that looks stuck to its stderr (its log), and it goes on running.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stop(threading.Event):
    """A threading.Event that a signal handler may set (`request`)."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None  # the first signal that asked to stop

    def request(self, signum: int) -> None:
        """Safe in a signal handler: no lock is taken here. Only the first request counts."""
        if self.signum is not None:
            return
        self.signum = signum
        threading.Thread(target=self.set, name="stop-request", daemon=True).start()

    def is_set(self) -> bool:
        return self.signum is not None or super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.signum is not None or super().wait(timeout)


def install(
    stop: Stop,
    log: logging.Logger,
    on_signal: Callable[[int], None] | None = None,
    on_repeat: Callable[[int], None] | None = None,
) -> None:
    """SIGTERM and SIGINT request `stop` (logged); `on_signal(signum)` runs first (e.g. forward
    the signal to a child); a second signal calls `on_repeat(signum)` when given."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        repeated = stop.signum is not None
        if on_signal is not None:
            on_signal(signum)
        if repeated:
            if on_repeat is not None:
                on_repeat(signum)
            return
        # Logging's locks are re-entrant: a line logged here cannot hang like Event.set().
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.request(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
