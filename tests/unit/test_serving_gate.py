"""The lake steps aside for short serving batches, and never for long ones (jobs/pipeline.ServingGate)."""

from __future__ import annotations

import threading
import time

from jobs.pipeline import ServingGate


def _serving_batch(gate: ServingGate, entered: threading.Event, release: threading.Event) -> threading.Thread:
    def run() -> None:
        with gate.serving():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert entered.wait(10)
    return thread


def test_no_serving_batch_running_means_no_wait() -> None:
    gate = ServingGate(2.0)
    assert gate.wait() == 0.0 and gate.light


def test_a_lake_step_waits_for_the_running_serving_batch_to_end() -> None:
    gate = ServingGate(10.0)
    entered, release = threading.Event(), threading.Event()
    serving = _serving_batch(gate, entered, release)
    waited: list[float] = []
    lake = threading.Thread(target=lambda: waited.append(gate.wait()), daemon=True)
    lake.start()
    lake.join(0.3)
    assert lake.is_alive(), "the lake step went on while the serving batch ran"
    release.set()
    lake.join(10)
    serving.join(10)
    assert not lake.is_alive() and len(waited) == 1 and 0.3 <= waited[0] < 10


def test_a_long_serving_batch_alone_does_not_stop_the_lake_stepping_aside() -> None:
    gate = ServingGate(0.05)
    with gate.serving():  # long (a lake batch beside it made it so), then idle
        time.sleep(0.1)
    time.sleep(0.2)
    entered, release = threading.Event(), threading.Event()
    serving = _serving_batch(gate, entered, release)
    try:
        assert gate.light and gate.wait() >= 0.05
    finally:
        release.set()
        serving.join(10)


def test_the_wait_is_capped() -> None:
    gate = ServingGate(0.2)
    entered, release = threading.Event(), threading.Event()
    serving = _serving_batch(gate, entered, release)
    try:
        assert 0.2 <= gate.wait() < 5
    finally:
        release.set()
        serving.join(10)


def test_the_lake_does_not_wait_when_serving_batches_come_back_to_back() -> None:
    gate = ServingGate(10.0)
    for _ in range(2):  # short batches, but busy more than half of the time: the load is up
        with gate.serving():
            time.sleep(0.05)
    assert not gate.light
    entered, release = threading.Event(), threading.Event()
    serving = _serving_batch(gate, entered, release)
    try:
        assert gate.wait() == 0.0
    finally:
        release.set()
        serving.join(10)
