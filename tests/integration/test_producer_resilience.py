"""No batch lost, none duplicated: Kafka restarted mid-run, SIGTERM, oversized batches."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from common.settings import Settings
from ingest.envelope import Batch, encode_value
from ingest.runner import Runner
from ingest.settings import from_sources
from tests.conftest import ROOT, run_stack
from tests.integration.producer_support import consume, end_offsets

WAIT_S = 180  # upper bound while waiting for progress, never a speed expectation


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def _local(tmp_path: Path, producer_id: str, **extra: str) -> Any:
    env = {
        "PRODUCER_SOURCE": "local",
        "PRODUCER_ID": producer_id,
        "PRODUCER_SPOOL_DIR": str(tmp_path / "spool"),
        "PRODUCER_METRICS_PORT": "0",
        "PRODUCER_BACKOFF_BASE_S": "0.2",
        "PRODUCER_BACKOFF_MAX_S": "2",
        "PRODUCER_RESULTS": "5",
        **extra,
    }
    return from_sources(env)


class Recording(Runner):
    """The producer, with every batch it hands to the publisher recorded as its message value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.values: list[dict[str, Any]] = []
        submit = self.publisher.submit

        def record(batch: Batch) -> None:
            self.values.append(orjson.loads(encode_value(batch)))
            submit(batch)

        self.publisher.submit = record  # type: ignore[method-assign]


def test_kafka_restart_mid_run_loses_nothing_and_duplicates_nothing(stack: Settings, tmp_path: Path) -> None:
    producer_id = f"test-restart-{uuid.uuid4().hex[:8]}"
    since = end_offsets(stack.kafka)
    # A tiny memory bound so that the outage also goes through the disk spool.
    settings = _local(tmp_path, producer_id, PRODUCER_INTERVAL_S="0.2", PRODUCER_MEMORY_BOUND="2")
    runner = Recording(settings, stack.kafka)
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        _until(lambda: runner.metrics.batches_published._value.get() >= 3, "3 batches before the outage")
        run_stack("down", "kafka")
        fetched_before = len(runner.values)
        _until(lambda: len(runner.values) >= fetched_before + 8, "8 batches during the outage")
        _until(lambda: runner.metrics.batches_spooled._value.get() >= 1, "spooling during the outage")
        run_stack("up", "kafka")
        fetched_after = len(runner.values)
        _until(lambda: len(runner.values) >= fetched_after + 3, "3 batches after the outage")
    finally:
        runner.stop.set()
        thread.join()
    assert runner.publisher.spool.pending == 0
    consumed = consume(stack.kafka, since, producer_id, len(runner.values))
    assert [c.value for c in consumed] == sorted(runner.values, key=lambda v: v["meta"]["seq"])


def test_sigterm_flushes_what_was_pending(stack: Settings, tmp_path: Path) -> None:
    producer_id = f"test-sigterm-{uuid.uuid4().hex[:8]}"
    since = end_offsets(stack.kafka)
    args = [
        sys.executable,
        str(ROOT / "producer.py"),
        "--source=local",
        "--interval=0.05",
        "--results=50",
        f"--producer-id={producer_id}",
        f"--spool-dir={tmp_path / 'spool'}",
        "--metrics-port=0",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if sum("batch seq=" in entry for entry in lines) >= 10:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=WAIT_S)
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert "SIGTERM received" in log
    assert "flushed: every batch confirmed by Kafka" in log
    fetched = re.findall(r"batch seq=(\d+) id=(\S+) source=local users=50", log)
    consumed = consume(stack.kafka, since, producer_id, len(fetched))
    assert [(str(c.value["meta"]["seq"]), c.value["meta"]["batch_id"]) for c in consumed] == fetched
    assert all(len(c.value["results"]) == 50 for c in consumed)


@pytest.mark.parametrize("compression", ["lz4", "none"])
def test_a_batch_larger_than_a_message_arrives_split_and_whole(
    stack: Settings, tmp_path: Path, compression: str
) -> None:
    """5000 users (~4.4 MB) with 3 MB requests: split by the producer; uncompressed
    3 MB parts are then refused by the broker (1 MB limit) and split further."""
    producer_id = f"test-split-{compression}-{uuid.uuid4().hex[:8]}"
    since = end_offsets(stack.kafka)
    settings = _local(
        tmp_path,
        producer_id,
        PRODUCER_RESULTS="5000",
        PRODUCER_MAX_BATCHES="1",
        PRODUCER_MAX_REQUEST_SIZE=str(3 * 1024 * 1024),
        PRODUCER_COMPRESSION=compression,
    )
    runner = Recording(settings, stack.kafka)
    assert runner.run() == 0
    [sent] = runner.values
    consumed = consume(stack.kafka, since, producer_id, 2)
    parts = {c.value["meta"]["part"]: c.value for c in consumed}
    count = consumed[0].value["meta"]["parts"]
    assert count >= 2 and sorted(parts) == list(range(count))
    users: list[Any] = []
    for p in range(count):
        meta = dict(parts[p]["meta"])
        assert (meta.pop("part"), meta.pop("parts"), meta.pop("first_index")) == (p, count, len(users))
        assert meta == {k: v for k, v in sent["meta"].items() if k not in ("part", "parts", "first_index")}
        assert parts[p]["info"] == sent["info"]
        users.extend(parts[p]["results"])
    assert users == sent["results"]
