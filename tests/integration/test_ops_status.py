"""ops.status / ops.health against real servers, and against addresses where nothing listens.

An address where nothing listens is exactly what a stopped server looks like to the status
command (the shared servers are never stopped by tests).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from common import clients
from common.settings import Settings
from ops import cassandra_setup, health

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "CASSANDRA_HOSTS": "127.0.0.1",
    "CASSANDRA_PORT": "1",
    "MONGO_URI": "mongodb://127.0.0.1:1/",
    "SPARK_UI_PORT": "1",
    "PRODUCER_METRICS_PORT": "1",
}


def states(checks: list[dict[str, str]]) -> dict[tuple[str, str], str]:
    return {(c["component"], c["name"]): c["state"] for c in checks}


def run_status(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "ops.status", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unreachable_servers_are_down_and_the_exit_code_says_so(tmp_path: Path) -> None:
    # STACK_DIR: no supervisor state of a demo run on this checkout (its rows are tested in
    # tests/unit/test_supervise.py).
    env = {**NOWHERE, "CHECKPOINT_DIR": str(tmp_path), "STACK_DIR": str(tmp_path / "stack")}
    proc = run_status("--json", env=env)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert states(report["checks"]) == {
        ("kafka", "broker"): "down",
        ("cassandra", "node"): "down",
        ("mongodb", "server"): "down",
        ("spark", "job"): "off",
        ("producer", "process"): "off",
        ("pipeline", "kafka lag (serving)"): "down",
        ("pipeline", "kafka lag (lake)"): "down",
    }
    details = {(c["component"], c["name"]): c["detail"] for c in report["checks"]}
    assert "127.0.0.1:1" in details[("kafka", "broker")]
    assert "Connection refused" in details[("cassandra", "node")]
    assert "127.0.0.1:1" in details[("mongodb", "server")]

    table = run_status(env=env)
    assert table.returncode == 1
    assert "NOT healthy" in table.stdout
    assert table.stdout.count("down") >= 4


def test_running_servers_are_up_with_their_figures(stack: Settings) -> None:
    checks = health.collect(stack, ["kafka", "cassandra", "mongodb"])
    by_name = {(c.component, c.name): c for c in checks}
    for key in [("kafka", "broker"), ("kafka", "topic"), ("cassandra", "node"), ("mongodb", "server")]:
        assert by_name[key].state == "ok", by_name[key]
    assert by_name[("kafka", "broker")].data["versions"] == ["4.1"]
    topic = by_name[("kafka", "topic")].data
    assert topic["partitions"] == stack.kafka.partitions
    assert sorted(topic["end_offsets"]) == [str(p) for p in range(stack.kafka.partitions)]
    assert by_name[("cassandra", "node")].data["version"] == "5.0.8"
    assert [n[:2] for n in by_name[("cassandra", "node")].data["nodes"]] == [["UN", "127.0.0.1"]]
    assert "pipeline_metrics" in by_name[("cassandra", "tables")].data["mebibytes"]
    assert by_name[("mongodb", "server")].detail.startswith("FerretDB")
    assert "randomUserCollection" in by_name[("mongodb", "collections")].data["counts"]


@pytest.fixture
def private_keyspace(stack: Settings) -> Iterator[tuple[Settings, Session]]:
    """The two metrics tables in a keyspace of this test only (others truncate the test keyspace)."""
    c = stack.cassandra
    keyspace = f"ops_status_{uuid.uuid4().hex[:8]}"
    statements = [
        st
        for st in cassandra_setup.ddl_statements(keyspace, c.replication_cql)
        if "CREATE KEYSPACE" in st or "pipeline_metrics" in st or "quality_metrics" in st
    ]
    with clients.cassandra_session(c, c.admin) as sess:
        for st in statements:
            sess.execute(st)
        try:
            yield dataclasses.replace(stack, cassandra=dataclasses.replace(c, keyspace=keyspace)), sess
        finally:
            sess.execute(f"DROP KEYSPACE {keyspace}")


def test_freshness_and_quarantine_rate_from_the_metrics_tables(
    private_keyspace: tuple[Settings, Session],
) -> None:
    s, sess = private_keyspace
    ks = s.cassandra.keyspace
    now = dt.datetime(2026, 3, 1, 0, 0, 30, tzinfo=dt.UTC)
    thresholds = health.Thresholds(no_batch_s=60, max_lag=100, quarantine_pct=10)
    assert health.pipeline_checks(s, sess, now, thresholds) == [
        health.Check("pipeline", "last batch", "stale", "no batch recorded today or yesterday"),
        health.Check("pipeline", "quality", "stale", "no quality row today or yesterday"),
    ]
    # Batches around midnight: the newest is today, the older ones yesterday.
    for batch, (time, users, bad) in enumerate(
        [("2026-02-28 23:59:40", 10, 0), ("2026-02-28 23:59:50", 10, 3), ("2026-03-01 00:00:00", 10, 1)]
    ):
        at = dt.datetime.fromisoformat(time)
        sess.execute(
            f"INSERT INTO {ks}.pipeline_metrics (day, batch_time, query_name, batch_id, input_rows, "
            "processed_rows_per_second, trigger_ms) VALUES (%s, %s, 'stream_users', %s, %s, %s, %s)",
            (at.date(), at, batch, users, 12.5, 800),
        )
        sess.execute(
            f"INSERT INTO {ks}.quality_metrics (day, batch_time, batch_id, users_in, valid, quarantined) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (at.date(), at, batch, users, users - bad, bad),
        )

    assert health.pipeline_checks(s, sess, now, thresholds) == [
        health.Check(
            "pipeline",
            "last batch",
            "ok",
            "batch 2 30s ago: 10 records, 12.5 rows/s, trigger 800 ms",
            {"batch_id": 2, "age_s": 30.0, "input_rows": 10},
        ),
        health.Check(
            "pipeline",
            "quality",
            "warn",
            "newest batch 2 30s ago; quarantined 4 of 30 users (13.3%) over the last 3 batches",
            {"age_s": 30.0, "quarantine_pct": 13.33, "users": 30, "quarantined": 4},
        ),
    ]
    later = now + dt.timedelta(seconds=100)
    assert [(c.name, c.state) for c in health.pipeline_checks(s, sess, later, thresholds)] == [
        ("last batch", "stale"),
        ("quality", "stale"),
    ]
