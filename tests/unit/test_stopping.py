"""common/stopping.py: a stop requested by a signal never waits for the event's own lock."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from common import stopping

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.unit


def test_a_request_while_the_main_thread_holds_the_events_lock_returns_at_once() -> None:
    # What a handler meets when the signal lands inside Event.wait(): the lock is held by the
    # very thread the handler runs in. threading.Event.set() would block here for good.
    stop = stopping.Stop()
    with stop._cond:  # the lock Event.wait() holds between two instructions
        stop.request(signal.SIGTERM)
        assert stop.is_set() and stop.wait(0) and stop.signum == signal.SIGTERM
    assert super(stopping.Stop, stop).wait(5)  # and the event itself is set once it is free


PROCESS = textwrap.dedent(
    """
    import logging, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from common import stopping
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    log = logging.getLogger("p")
    stop = stopping.Stop()
    seen = []
    stopping.install(stop, log, on_signal=seen.append, on_repeat=lambda s: print("repeat", s, flush=True))
    print("ready", flush=True)
    while not stop.wait(0.0001):  # as tight as the producer's loop, or tighter
        pass
    time.sleep(0.3)  # a second signal may come meanwhile
    print("stopped by", stop.signum, "signals", seen, flush=True)
    """
)


def test_a_process_in_a_tight_wait_loop_stops_on_sigterm_and_hears_the_second_one() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PROCESS, str(ROOT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGUSR1)  # faulthandler: the stacks on stderr, and it runs on
    time.sleep(0.2)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.splitlines() == [
        "SIGTERM received: stopping",
        "repeat 2",
        f"stopped by {int(signal.SIGTERM)} signals [{int(signal.SIGTERM)}, {int(signal.SIGINT)}]",
    ]
    assert "Current thread" in err and "File " in err  # the dump SIGUSR1 asked for


def test_stop_is_still_an_event_for_code_that_waits_on_one() -> None:
    stop = stopping.Stop()
    threading.Timer(0.1, stop.set).start()
    assert not stop.is_set() and stop.wait(5) and stop.signum is None
