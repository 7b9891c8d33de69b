"""The local Kafka really enforces the platform's access rules, and keeps data across a restart.

Every test talks to the real broker started by `scripts/stack.sh up`. Test records go to the
platform topic (the only one the ACLs open) with the header `rua-test`, so a reader can tell them
from real users.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from common.settings import Account, KafkaSettings, Settings
from ops import kafka_admin
from tests.conftest import run_stack

# Upper bounds for waiting on the broker, never expectations about speed.
SEND_TIMEOUT_S = 20
CONSUME_DEADLINE_S = 60
REFUSED_BOOTSTRAP_MS = 3_000


@dataclass(frozen=True)
class Record:
    """The parts of a Kafka record a round trip must preserve."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@pytest.fixture(scope="module")
def kafka(stack: Settings) -> KafkaSettings:
    return stack.kafka


def _test_record() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A unique key, a value with every byte value, and headers (binary one included)."""
    marker = uuid.uuid4().hex
    key = f"test-{marker}".encode()
    value = b'{"test": "' + marker.encode() + b'"}' + bytes(range(256))
    headers = [("rua-test", b"1"), ("binary", b"\x00\xff\x10"), ("marker", marker.encode())]
    return key, value, headers


def _produce(
    k: KafkaSettings, account: Account, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
) -> Record:
    # The idempotent producer (kafka-python's default) works with WRITE on the topic alone.
    producer = KafkaProducer(**k.client_config(account), enable_idempotence=True, acks="all")
    try:
        meta = producer.send(k.topic, key=key, value=value, headers=headers).get(timeout=SEND_TIMEOUT_S)
    finally:
        producer.close(timeout=10)
    return Record(meta.topic, meta.partition, meta.offset, key, value, tuple(headers))


def _as_record(r: Any) -> Record:
    """The comparable parts of a kafka-python ConsumerRecord."""
    return Record(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers))


def _job_group(k: KafkaSettings) -> str:
    return f"{k.job_group_prefix}-test-{uuid.uuid4().hex[:12]}"


def _consume_subscribed(k: KafkaSettings, account: Account, group: str, wanted: Record) -> Record | None:
    """Join a consumer group (as the Spark job would) and read until the wanted record shows up."""
    consumer = KafkaConsumer(
        k.topic,
        **k.client_config(account),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1_000).values():
                for r in records:
                    if (r.partition, r.offset) == (wanted.partition, wanted.offset):
                        consumer.commit()  # offsets in the group: needs READ on the group
                        return _as_record(r)
        return None
    finally:
        consumer.close()


def _consume_at(k: KafkaSettings, account: Account, group: str | None, at: Record) -> Record | None:
    """Read the record at a known partition and offset."""
    tp = TopicPartition(k.topic, at.partition)
    consumer = KafkaConsumer(**k.client_config(account), group_id=group, enable_auto_commit=False)
    try:
        consumer.assign([tp])
        consumer.seek(tp, at.offset)
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while time.monotonic() < deadline:
            for r in consumer.poll(timeout_ms=1_000).get(tp, []):
                if r.offset == at.offset:
                    return _as_record(r)
        return None
    finally:
        consumer.close()


def _broker_log(settings: Settings) -> Path:
    return settings.stack.stack_dir / "logs" / "kafka.log"


def _lines_since(path: Path, start: int) -> list[str]:
    with path.open("rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace").splitlines()


def _bootstrap(config: dict[str, Any]) -> None:
    admin = KafkaAdminClient(**config, bootstrap_timeout_ms=REFUSED_BOOTSTRAP_MS)
    admin.close()


def test_setup_converged_to_exactly_the_documented_grants(kafka: KafkaSettings) -> None:
    assert kafka_admin.setup(kafka) == []  # `stack.sh up` already ran it: nothing left to change
    real = kafka_admin.real_grants(kafka)
    assert kafka_admin.scoped_grants(kafka, real) == kafka_admin.desired_grants(kafka)
    # No account has any right beyond the matrix, whatever topic it was set up for.
    managed = {f"User:{kafka.producer.user}", f"User:{kafka.job.user}"}
    assert {g.principal for g in real} <= managed
    assert {(g.principal, g.resource_type, g.pattern_type, g.operation, g.permission) for g in real} == {
        (g.principal, g.resource_type, g.pattern_type, g.operation, g.permission)
        for g in kafka_admin.desired_grants(kafka)
    }
    with kafka_admin.admin_client(kafka) as admin:
        state = kafka_admin.topic_state(admin, kafka.topic)
    assert state == kafka_admin.TopicState(
        kafka.topic, kafka.partitions, kafka.replication, kafka.retention_ms
    )


def test_producer_to_job_round_trip_is_byte_exact(kafka: KafkaSettings) -> None:
    key, value, headers = _test_record()
    sent = _produce(kafka, kafka.producer, key, value, headers)

    received = _consume_subscribed(kafka, kafka.job, _job_group(kafka), sent)

    assert received == sent


def test_job_cannot_write(kafka: KafkaSettings) -> None:
    producer = KafkaProducer(**kafka.client_config(kafka.job), enable_idempotence=False, retries=0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(kafka.topic, key=b"k", value=b"must not land").get(timeout=SEND_TIMEOUT_S)
    finally:
        producer.close(timeout=10)


def test_producer_cannot_read(kafka: KafkaSettings) -> None:
    key, value, headers = _test_record()
    sent = _produce(kafka, kafka.producer, key, value, headers)
    with pytest.raises(TopicAuthorizationFailedError):
        _consume_at(kafka, kafka.producer, None, sent)


def test_job_cannot_use_a_group_outside_its_prefix(kafka: KafkaSettings) -> None:
    key, value, headers = _test_record()
    sent = _produce(kafka, kafka.producer, key, value, headers)
    with pytest.raises(GroupAuthorizationFailedError):
        _consume_subscribed(kafka, kafka.job, f"not-{kafka.job_group_prefix}-{uuid.uuid4().hex}", sent)


def test_wrong_password_is_refused(stack: Settings, kafka: KafkaSettings) -> None:
    _bootstrap(kafka.client_config(kafka.job))  # control: the right password gets in
    log_path = _broker_log(stack)
    start = log_path.stat().st_size

    with pytest.raises(KafkaTimeoutError):
        _bootstrap(kafka.client_config(Account(kafka.job.user, SecretStr("not-the-password"))))

    # Refused by authentication, not lost on the network: the broker's own log says so.
    refusals = [line for line in _lines_since(log_path, start) if "Failed authentication" in line]
    assert refusals
    assert all("invalid credentials with SASL mechanism SCRAM-SHA-256" in line for line in refusals)


def test_anonymous_client_is_refused(kafka: KafkaSettings) -> None:
    _bootstrap(kafka.client_config(kafka.job))  # control: same address, with credentials
    with pytest.raises(KafkaTimeoutError):
        _bootstrap({"bootstrap_servers": kafka.bootstrap_servers})  # PLAINTEXT, no SASL at all


def test_records_survive_a_restart(kafka: KafkaSettings) -> None:
    key, value, headers = _test_record()
    sent = _produce(kafka, kafka.producer, key, value, headers)

    run_stack("down", "kafka")
    run_stack("up", "kafka")

    assert _consume_at(kafka, kafka.job, _job_group(kafka), sent) == sent
