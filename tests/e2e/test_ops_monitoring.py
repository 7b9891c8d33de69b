"""The job's monitoring on a real run: listener rows in Cassandra, the Spark check, exact lag.

One Spark start, in a namespace of its own (topic, keyspace, database created here with
the same setup code as the real ones), so concurrent tests on the shared test namespace can
neither truncate these rows nor change these offsets.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from common import clients
from common.settings import Settings
from ops import cassandra_setup, health, kafka_admin, lag, mongo_setup
from tests.e2e.conftest import JobRunner, wait_for
from tests.unit.bronze_rows import encode, envelope, load_users


def free_port() -> str:
    # Other e2e jobs run on JobRunner's port and the next ones (Spark moves up when busy):
    # a port nobody holds, so the Spark check finds this job and not another stream_users.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


UI_PORT = free_port()


@pytest.fixture
def private(stack: Settings) -> Iterator[Settings]:
    tag = uuid.uuid4().hex[:8]
    s = dataclasses.replace(
        stack,
        env={**stack.env, "SPARK_UI_PORT": UI_PORT},
        kafka=dataclasses.replace(stack.kafka, topic=f"ops_e2e_{tag}"),
        cassandra=dataclasses.replace(stack.cassandra, keyspace=f"ops_e2e_{tag}"),
        mongo=dataclasses.replace(stack.mongo, database=f"ops_e2e_{tag}"),
    )
    kafka_admin.setup(s.kafka)
    cassandra_setup.setup(s.cassandra)
    mongo_setup.setup(s)
    try:
        yield s
    finally:
        with clients.cassandra_session(s.cassandra, s.cassandra.admin) as sess:
            sess.execute(f"DROP KEYSPACE IF EXISTS {s.cassandra.keyspace}")
        with clients.mongo_client(s, s.mongo.admin) as client:
            client.drop_database(s.mongo.database)
        with kafka_admin.admin_client(s.kafka) as admin:
            admin.delete_topics([s.kafka.topic], timeout_ms=kafka_admin.ADMIN_TIMEOUT_MS)
            # Only this topic's grants: the group grant (a shared prefix) stays.
            topic_grants = [g for g in kafka_admin.desired_grants(s.kafka) if g.resource_type == "TOPIC"]
            admin.delete_acls([kafka_admin._to_filter(g) for g in topic_grants])


class OwnPortJobRunner(JobRunner):
    """A UI port of its own: another e2e job on JobRunner's port is also named stream_users."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "SPARK_UI_PORT": UI_PORT}


def produce(s: Settings, messages: list[tuple[str, bytes, int]]) -> None:
    producer = KafkaProducer(**s.kafka.client_config(s.kafka.producer), acks="all")
    try:
        for key, value, partition in messages:
            producer.send(s.kafka.topic, key=key.encode(), value=value, partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close()


def batches(fixtures_dir: Path, names: list[str], seq0: int = 0) -> list[tuple[str, bytes, int]]:
    out = []
    for i, name in enumerate(names):
        info, users = load_users(fixtures_dir, name)
        if name == "nat-FR.json":
            users[0]["email"] = "not-an-email"  # one quarantined user
        batch = envelope(users, batch_id=str(uuid.uuid4()), seq=seq0 + i, info=info, source="api")
        out.append((batch["meta"]["batch_id"], encode(batch), i % 3))
    return out


def test_listener_rows_spark_check_and_lag_of_a_real_run(
    private: Settings, fixtures_dir: Path, tmp_path: Path
) -> None:
    s = private
    first = batches(fixtures_dir, ["nat-US.json", "nat-GB.json", "nat-FR.json", "nat-CA.json"])
    produce(s, first)
    runner = OwnPortJobRunner(
        tmp_path,
        "earliest",
        extra_env={
            "KAFKA_TOPIC": s.kafka.topic,
            "CASSANDRA_KEYSPACE": s.cassandra.keyspace,
            "MONGO_DATABASE": s.mongo.database,
        },
    )
    checkpoints = {q: tmp_path / "checkpoints" / q for q in ("serving", "lake")}
    proc = runner.start()
    rows: list[Any] = []
    try:
        with clients.cassandra_session(s.cassandra, s.cassandra.reader, s.cassandra.keyspace) as sess:

            def recorded() -> bool:
                assert proc.poll() is None, f"job exited {proc.returncode}:\n{runner.log_text()[-4000:]}"
                rows[:] = list(sess.execute("SELECT * FROM pipeline_metrics"))
                # Each query reads every record once.
                return all(
                    sum(r.input_rows for r in rows if r.query_name == q) == len(first) for q in checkpoints
                )

            wait_for(recorded, 600, "listener rows for every record")
            spark: list[health.Check] = []

            def spark_answers() -> bool:
                # A loaded machine can keep the UI from answering within the check's timeout.
                spark[:] = health.spark_checks(s)
                return spark[0].state != "warn" or "did not answer" not in spark[0].detail

            wait_for(spark_answers, 300, "an answer from the Spark UI", interval=5)
        # Every batch is committed before its progress is reported: nothing left behind.
        for checkpoint in checkpoints.values():
            assert lag.lag(s.kafka, checkpoint).total == 0
    finally:
        runner.kill(proc)

    assert {r.query_name for r in rows} == {"serving", "lake"}
    sink_steps = {"serving": {"sink:cassandra_latest", "sink:mongo_users"}, "lake": {"sink:bronze"}}
    for query, steps in sink_steps.items():
        mine = sorted((r for r in rows if r.query_name == query), key=lambda r: r.batch_id)
        assert [r.batch_id for r in mine] == list(range(len(mine)))
        for r in mine:
            assert r.day == r.batch_time.date()
            assert r.trigger_ms == r.durations_ms["triggerExecution"]
            assert {"addBatch", "triggerExecution", "sink:total", *steps} <= set(r.durations_ms)
            assert r.processed_rows_per_second is not None
        assert json.loads(mine[-1].end_offsets) == {s.kafka.topic: {"0": 2, "1": 1, "2": 1}}
        assert f"progress {query} batch 0:" in runner.log_text()
    assert sum(r.quarantined or 0 for r in rows if r.query_name == "lake") == 1

    (check,) = spark
    assert (check.component, check.name, check.state) == ("spark", "job", "ok"), check
    assert f"127.0.0.1:{UI_PORT}" in check.detail and "active" in check.detail

    # The job is gone: what is produced now is lag, exactly, per partition.
    produce(s, batches(fixtures_dir, ["nat-IR.json", "nat-US.json", "nat-GB.json", "mixed-10.json"], 10))
    checkpoint = checkpoints["lake"]
    report = lag.lag(s.kafka, checkpoint)
    assert report.batch_id == max(r.batch_id for r in rows if r.query_name == "lake")
    assert [(p.partition, p.committed, p.lag) for p in report.partitions] == [(0, 2, 2), (1, 1, 1), (2, 1, 1)]
