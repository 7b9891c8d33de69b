"""A batch with one user larger than a Kafka message can never be sent: the publisher keeps it
on disk beside the spool, says so in one line, and goes on with the batches behind it, also
after a restart from the spool (it used to raise out of the producer's loop, on every start)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from ingest.api_client import Backoff
from ingest.envelope import from_record, make_batch
from ingest.metrics import ProducerMetrics
from ingest.publisher import Publisher
from ingest.spool import Spool

FETCHED = dt.datetime(2026, 11, 27, 23, 40, tzinfo=dt.UTC)
LIMIT = 200_000  # bytes a Kafka message may take here


class _Sent:
    """What a Kafka producer's send returns: confirms at once (the broker is not under test)."""

    def add_callback(self, fn: Any, *args: Any) -> None:
        fn(*args, None)

    def add_errback(self, fn: Any, *args: Any) -> None:
        pass


class _Recorder:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def __call__(self, **_config: Any) -> _Recorder:
        return self

    def send(self, _topic: str, key: bytes, value: bytes, headers: Any) -> _Sent:
        self.values.append(value)
        return _Sent()


def _batches(fixtures_dir: Path) -> list[Any]:
    document = json.loads((fixtures_dir / "nat-GB.json").read_text())
    huge = copy.deepcopy(document)
    huge["results"][3]["name"]["first"] = "x" * (LIMIT + 1)
    return [make_batch(d, "api", "p", seq, FETCHED) for seq, d in enumerate([document, huge, document])]


def _published(recorder: _Recorder) -> list[int]:
    return [json.loads(v)["meta"]["seq"] for v in recorder.values]


def test_a_batch_that_can_never_be_sent_is_kept_aside_and_the_rest_goes_on(
    tmp_path: Path, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, huge, after = _batches(fixtures_dir)
    recorder, metrics = _Recorder(), ProducerMetrics()
    spool = Spool(tmp_path, "p")
    publisher = Publisher(
        {}, "t", spool, metrics, Backoff(1.0, 4.0), max_request_size=LIMIT, producer_factory=recorder
    )
    caplog.set_level(logging.ERROR, logger="ingest.publisher")
    for batch in (good, huge, after):
        publisher.submit(batch)
    publisher.pump()
    publisher.pump()
    assert _published(recorder) == [0, 2]
    assert publisher.idle() and publisher.delivered == [good.meta.batch_id, after.meta.batch_id]
    kept = [from_record(line) for line in spool.rejected_path.read_bytes().splitlines()]
    assert [(b.meta, b.results) for b in kept] == [(huge.meta, huge.results)]
    [line] = [r.getMessage() for r in caplog.records]
    said = re.fullmatch(
        rf"batch {huge.meta.batch_id} seq=1 can never be sent \(a single user needs (\d+) bytes, "
        rf"above the {LIMIT}-byte limit\): kept in {re.escape(str(spool.rejected_path))}, not published",
        line,
    )
    assert said is not None and int(said.group(1)) > LIMIT, line
    assert metrics.publish_failures.labels("user_too_large")._value.get() == 1


def test_a_spooled_batch_that_can_never_be_sent_leaves_the_spool(tmp_path: Path, fixtures_dir: Path) -> None:
    good, huge, after = _batches(fixtures_dir)
    spool = Spool(tmp_path, "p")
    for batch in (good, huge, after):
        spool.append(batch)  # a previous run spooled them (Kafka was down)
    for _start in range(2):  # the second start must find nothing left to send
        recorder = _Recorder()
        spool = Spool(tmp_path, "p")
        publisher = Publisher(
            {},
            "t",
            spool,
            ProducerMetrics(),
            Backoff(1.0, 4.0),
            max_request_size=LIMIT,
            producer_factory=recorder,
        )
        for _ in range(4):
            publisher.pump()
        assert publisher.idle() and spool.pending == 0
        assert _published(recorder) == ([0, 2] if _start == 0 else [])
    assert [from_record(line).meta for line in spool.rejected_path.read_bytes().splitlines()] == [huge.meta]
