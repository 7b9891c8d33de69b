"""ops.lag against the real broker: the lag equals the records produced after the committed offsets.

The test uses a topic of its own (created and deleted here, as the admin), so producers of
other tests on the shared test topic cannot change the figures.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from common.settings import Settings
from ops import lag
from ops.kafka_admin import ADMIN_TIMEOUT_MS, admin_client
from tests.unit.test_ops_lag import offsets, write_batch


@pytest.fixture
def private_topic(stack: Settings) -> Iterator[str]:
    name = f"ops_lag_test_{uuid.uuid4().hex[:8]}"
    with admin_client(stack.kafka) as admin:
        admin.create_topics(
            {name: {"num_partitions": 3, "replication_factor": 1}},
            timeout_ms=ADMIN_TIMEOUT_MS,
            wait_for_metadata=True,
        )
    try:
        yield name
    finally:
        with admin_client(stack.kafka) as admin:
            admin.delete_topics([name], timeout_ms=ADMIN_TIMEOUT_MS)


def produce(s: Settings, topic: str, per_partition: dict[int, int]) -> None:
    producer = KafkaProducer(**s.kafka.client_config(s.kafka.admin), acks="all")
    try:
        for partition, count in per_partition.items():
            for i in range(count):
                producer.send(topic, value=f"record {i}".encode(), partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close()


def test_lag_is_exactly_the_produced_but_unprocessed_records(
    stack: Settings, private_topic: str, tmp_path: Path
) -> None:
    produce(stack, private_topic, {0: 4, 1: 2})
    assert lag.end_offsets(stack.kafka, private_topic) == {0: 4, 1: 2, 2: 0}
    # The job processed everything so far (batch 1 committed), then batch 2 started and crashed.
    write_batch(tmp_path, 0, [offsets(private_topic, {0: 0, 1: 0, 2: 0})], commit=True)
    write_batch(tmp_path, 1, [offsets(private_topic, {0: 4, 1: 2, 2: 0})], commit=True)
    produce(stack, private_topic, {0: 3, 2: 1})
    write_batch(tmp_path, 2, [offsets(private_topic, {0: 7, 1: 2, 2: 1})], commit=False)

    report = lag.lag(stack.kafka, tmp_path, private_topic)

    assert report == lag.LagReport(
        topic=private_topic,
        checkpoint=str(tmp_path),
        batch_id=1,
        in_flight=2,
        partitions=[
            lag.PartitionLag(0, 7, 4, 3),
            lag.PartitionLag(1, 2, 2, 0),
            lag.PartitionLag(2, 1, 0, 1),
        ],
    )
    assert report.total == 4


def test_cli_prints_json(
    stack: Settings,
    private_topic: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    produce(stack, private_topic, {1: 5})
    write_batch(tmp_path, 0, [offsets(private_topic, {0: 0, 1: 2, 2: 0})], commit=True)
    monkeypatch.setenv("KAFKA_TOPIC", private_topic)
    assert lag.main(["--checkpoint", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["batch_id"], out["total"]) == (0, 3)
    assert [(p["partition"], p["lag"]) for p in out["partitions"]] == [(0, 0), (1, 3), (2, 0)]
