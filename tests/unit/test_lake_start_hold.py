"""At a (re)start the lake query waits for the serving query to catch up, within a bound
(jobs/stream_users.Job.held, jobs/listener.caught_up)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from common import job_settings
from common import settings as common_settings
from common.job_settings import QuerySettings
from jobs.listener import caught_up
from jobs.stream_users import Job
from tests.unit.settings_env import minimal_env

TOPIC = "random_user_data"


def _progress(end: dict[str, int], latest: dict[str, int] | None, as_text: bool = False) -> dict[str, Any]:
    """A progress report shaped as PySpark's lastProgress gives it (Kafka source)."""

    def offsets(o: dict[str, int]) -> Any:
        value = {TOPIC: o}
        return json.dumps(value) if as_text else value

    source: dict[str, Any] = {
        "description": "KafkaV2[Subscribe[random_user_data]]",
        "endOffset": offsets(end),
    }
    if latest is not None:
        source["latestOffset"] = offsets(latest)
    return {"batchId": 3, "numInputRows": 10, "sources": [source]}


def test_caught_up_when_the_batch_read_up_to_the_latest_offsets() -> None:
    assert caught_up(_progress({"0": 5, "1": 7}, {"1": 7, "0": 5}))
    assert caught_up(_progress({"0": 5, "1": 7}, {"0": 5, "1": 7}, as_text=True))


def test_not_caught_up_when_capped_or_unknown() -> None:
    assert not caught_up(_progress({"0": 5, "1": 7}, {"0": 5, "1": 900}))  # maxOffsetsPerTrigger
    assert not caught_up(_progress({"0": 5}, None))  # a source that does not report its latest
    assert not caught_up(None)  # no batch yet
    assert not caught_up({"batchId": 0, "sources": []})


class _Query:
    """What Job.run reads of a started query: whether it runs, its last progress, its error."""

    def __init__(self) -> None:
        self.isActive = True
        self.lastProgress: dict[str, Any] | None = None

    def exception(self) -> None:
        return None

    def stop(self) -> None:
        self.isActive = False


class _Job(Job):
    """The job's start order and restarts, with the queries' side replaced by _Query."""

    def __init__(self, checkpoints: Path, **env: str) -> None:
        base = minimal_env(CHECKPOINT_DIR=str(checkpoints), **env)
        super().__init__(
            None,  # type: ignore[arg-type]  # no Spark: start() is replaced
            job_settings.from_settings(common_settings.from_mapping(base)),
            None,  # type: ignore[arg-type]
            None,
            False,
        )
        self.started: list[tuple[str, float]] = []
        self.queries: dict[str, _Query] = {}

    def start(self, q: QuerySettings) -> Any:
        self.started.append((q.name, time.monotonic()))
        self.queries[q.name] = _Query()
        return self.queries[q.name]


def _run(job: _Job, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=job.run, args=(["serving", "lake"], stop), daemon=True)
    thread.start()
    return thread


def _wait(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_lake_starts_once_the_serving_query_caught_up(tmp_path: Path) -> None:
    job, stop = _Job(tmp_path), threading.Event()
    thread = _run(job, stop)
    try:
        _wait(lambda: "serving" in job.queries)
        serving = job.queries["serving"]
        serving.lastProgress = _progress({"0": 500}, {"0": 4_000})  # a capped catch-up batch
        time.sleep(1.2)
        assert [name for name, _ in job.started] == ["serving"]
        serving.lastProgress = _progress({"0": 4_000}, {"0": 4_000})
        _wait(lambda: "lake" in job.queries)
        assert [name for name, _ in job.started] == ["serving", "lake"]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_the_hold_is_bounded(tmp_path: Path) -> None:
    job, stop = _Job(tmp_path, LAKE_START_HOLD_MAX_S="1"), threading.Event()
    thread = _run(job, stop)
    try:
        _wait(lambda: "lake" in job.queries)  # the serving query never reports a batch
        (_, serving_at), (_, lake_at) = job.started
        assert lake_at - serving_at >= 1.0
    finally:
        stop.set()
        thread.join(10)


def test_no_hold_starts_both_at_once(tmp_path: Path) -> None:
    job, stop = _Job(tmp_path, LAKE_START_HOLD_MAX_S="0"), threading.Event()
    thread = _run(job, stop)
    try:
        _wait(lambda: len(job.started) == 2)
        assert [name for name, _ in job.started] == ["serving", "lake"]
        assert job.started[1][1] - job.started[0][1] < 0.5
    finally:
        stop.set()
        thread.join(10)


def test_the_hold_is_a_validated_setting() -> None:
    load = job_settings.from_settings
    assert load(common_settings.from_mapping(minimal_env())).lake_start_hold_max_s == 60
    with pytest.raises(common_settings.SettingsError, match=r"LAKE_START_HOLD_MAX_S=-1"):
        load(common_settings.from_mapping(minimal_env(LAKE_START_HOLD_MAX_S="-1")))
