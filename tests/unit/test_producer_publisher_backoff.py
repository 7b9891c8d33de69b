"""The publisher while Kafka does not answer: it never blocks, and it retries after jittered,
doubling, capped delays (ingest.api_client.Backoff, a tenacity wait) until Kafka is back."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError

from ingest.api_client import Backoff
from ingest.metrics import ProducerMetrics
from ingest.publisher import Publisher
from ingest.spool import Spool


def test_kafka_down_is_retried_after_capped_jittered_delays_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    connects: list[int] = []

    def no_broker(**_config: Any) -> Any:
        connects.append(1)
        raise KafkaConnectionError()

    metrics = ProducerMetrics()
    publisher = Publisher(
        {}, "t", Spool(tmp_path, "p"), metrics, Backoff(base_s=1.0, max_s=4.0), producer_factory=no_broker
    )
    caplog.set_level(logging.WARNING, logger="ingest.publisher")
    publisher.pump()
    publisher.pump()  # still backing off: returns at once, no second connect
    assert len(connects) == 1
    for _ in range(11):
        publisher._not_before = 0.0  # the delay has passed
        publisher.pump()
    delays = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"retrying in ([\d.]+) s", r.getMessage())) is not None
    ]
    assert len(connects) == len(delays) == 12
    assert metrics.kafka_up._value.get() == 0
    assert 0.1 <= delays[0] <= 1.0 and 0.1 <= delays[1] <= 2.0  # the window doubles
    assert all(0.1 <= d <= 4.0 for d in delays)  # at least a tenth of the base, at most the cap
    assert len(set(delays)) > 1  # jittered
