"""Harness of the end-to-end tier: a clean test namespace, Kafka offsets, the real job.

The job runs exactly as users run it (scripts/spark-submit.sh jobs/stream_users.py) in
its own process group, so a test can SIGKILL all of it (driver JVM and Python) at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pymongo import MongoClient

from common.settings import Settings
from jobs.preflight import CASSANDRA_TABLES

ROOT = Path(__file__).resolve().parents[2]
USER_TABLES = CASSANDRA_TABLES  # every table of the keyspace, emptied between tests


@pytest.fixture(scope="session")
def cassandra_admin(stack: Settings) -> Iterator[Session]:
    c = stack.cassandra
    cluster = Cluster(
        list(c.hosts),
        port=c.port,
        auth_provider=PlainTextAuthProvider(c.admin.user, c.admin.password.get_secret_value()),
        protocol_version=5,
    )
    session = cluster.connect(c.keyspace)
    yield session
    cluster.shutdown()


@pytest.fixture(scope="session")
def mongo_db(stack: Settings) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongo.uri(stack.mongo.admin))
    yield client[stack.mongo.database]
    client.close()


@pytest.fixture
def clean_stores(stack: Settings, cassandra_admin: Session, mongo_db: Any) -> Settings:
    """Empty the test namespace's tables and collections (never the demo's: see tests/conftest.py)."""
    assert stack.cassandra.keyspace.endswith("_test") and stack.mongo.database.endswith("_test")
    for table in USER_TABLES:
        cassandra_admin.execute(f"TRUNCATE {table}")
    for collection in ("randomUserCollection", "anomalies"):
        mongo_db[collection].delete_many({})
    return stack


def end_offsets(s: Settings) -> dict[int, int]:
    consumer = KafkaConsumer(**s.kafka.client_config(s.kafka.admin))
    try:
        parts = [
            TopicPartition(s.kafka.topic, p) for p in sorted(consumer.partitions_for_topic(s.kafka.topic))
        ]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def offsets_json(s: Settings, offsets: dict[int, int]) -> str:
    return json.dumps({s.kafka.topic: {str(p): o for p, o in offsets.items()}})


def produce(s: Settings, messages: list[tuple[str | None, bytes]]) -> None:
    """Send (key, value) records as the producer's account and wait for every ack."""
    producer = KafkaProducer(**s.kafka.client_config(s.kafka.producer), acks="all")
    try:
        for key, value in messages:
            producer.send(s.kafka.topic, key=key.encode() if key else None, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


@dataclass
class JobRunner:
    """The real streaming job, in a process group of its own, with a private lake and checkpoint."""

    workdir: Path
    starting_offsets: str
    extra_env: dict[str, str] = field(default_factory=dict)
    runs: int = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            LAKE_DIR=str(self.workdir / "lake"),
            CHECKPOINT_DIR=str(self.workdir / "checkpoints"),
            KAFKA_STARTING_OFFSETS=self.starting_offsets,
            SERVING_TRIGGER_INTERVAL="500 milliseconds",
            LAKE_TRIGGER_INTERVAL="2 seconds",
            SPARK_UI_PORT="4140",
        )
        env.update(self.extra_env)
        return env

    def _log(self) -> Path:
        return self.workdir / f"job-{self.runs}.log"

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        log = self._log().open("wb")
        return subprocess.Popen(
            [str(ROOT / "scripts" / "spark-submit.sh"), str(ROOT / "jobs" / "stream_users.py"), *args],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run_available_now(self, timeout: float = 600) -> str:
        """Process everything in the topic from the checkpoint on, then stop; returns the log."""
        proc = self.start("--available-now")
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise
        text = self._log().read_text(errors="replace")
        assert code == 0, f"job exited {code}:\n{text[-4000:]}"
        return text

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole job (spark-submit's JVM and the Python driver), no goodbye."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

    def log_text(self) -> str:
        return self._log().read_text(errors="replace")


def job_log(job: JobRunner, run: int) -> str:
    """The log of the job's `run`-th start (1 = the first), as far as it is written."""
    path = job.workdir / f"job-{run}.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
