"""Micro-batches at their edges, through the job's processors, on the real stack.

- A batch without records (Spark runs one when a query starts at `latest`) goes through
  both paths and writes nothing. Its quality_metrics row had no day (the partition key):
  the Cassandra write failed, was retried without end, and the lake never passed batch 0.
- At the specification's rate (the serving query light) a lake batch ends with a concurrent
  GC when the driver holds more heap than it needs, so it gives it back; under load it does not.
- A lake batch run again after its gold overwrite committed (a retry of the gold lane, or
  the batch rerun after a crash) projects the very same statistics: adding its increment to
  a gold that already held it counted the batch twice in Cassandra.

The processors write to a keyspace of this module alone (made by the project's own DDL) and
a lake in tmp_path, with the session's Spark given the job's connector settings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from delta.tables import DeltaTable
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from common import clients, job_settings
from common.job_settings import JobSettings
from common.settings import Settings
from jobs import erase, pipeline
from jobs.core import aggregates
from jobs.io import cassandra, delta, retry
from ops import cassandra_setup
from tests.unit.bronze_rows import bronze_df, bronze_row, encode, envelope, load_users

T = TypeVar("T")
APP = "test-pipeline-batches"
KEYSPACE = "random_user_keyspace_batches_test"
STATS = ("country_stats", "gender_stats", "age_band_stats")


def _once(name: str, action: Callable[[], T], **_: object) -> T:
    return action()


@pytest.fixture
def job(
    spark: SparkSession, stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[JobSettings]:
    """The job's settings on a private keyspace and lake; every write must succeed at its first
    attempt (the job would retry a failing one forever)."""
    monkeypatch.setattr(retry, "with_retries", _once)
    c = stack.cassandra
    with clients.cassandra_session(c, c.admin) as admin:
        for statement in cassandra_setup.ddl_statements(KEYSPACE, c.replication_cql):
            admin.execute(statement)
        for permission in ("MODIFY", "SELECT"):
            admin.execute(f"GRANT {permission} ON KEYSPACE {KEYSPACE} TO {c.writer.user}")
        for table in ("quality_metrics", *STATS):
            admin.execute(f"TRUNCATE {KEYSPACE}.{table}")
    common = dataclasses.replace(stack, cassandra=dataclasses.replace(c, keyspace=KEYSPACE))
    settings = dataclasses.replace(job_settings.from_settings(common), lake_dir=tmp_path / "lake")
    # The job's connector settings (spark_session) on the shared session, for this test.
    conf = cassandra.cassandra_conf(stack, c.writer)
    conf["spark.mongodb.write.connection.uri"] = stack.mongo.uri(stack.mongo.writer, jvm=True)
    previous = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield settings
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def _rows(stack: Settings, query: str) -> list[tuple[Any, ...]]:
    with clients.cassandra_session(stack.cassandra, stack.cassandra.admin, KEYSPACE) as session:
        return sorted(tuple(r) for r in session.execute(query))


def _stats(stack: Settings) -> dict[str, list[tuple[Any, ...]]]:
    return {table: _rows(stack, f"SELECT * FROM {table}") for table in STATS}


def test_an_empty_batch_passes_both_paths_and_writes_no_quality_row(
    spark: SparkSession, stack: Settings, job: JobSettings
) -> None:
    empty = bronze_df(spark, [])
    pseudonym = job.common.pseudonym
    rows = pipeline.serving_rows(empty, pseudonym.key, pseudonym.key_version)
    pipeline.ServingProcessor(spark, job, APP).process(rows, 0)
    report = pipeline.LakeProcessor(spark, job, APP).process(empty, 0)
    assert (report.records_in, report.users_in, report.new_users) == (0, 0, 0)
    assert _rows(stack, "SELECT batch_id FROM quality_metrics") == []


def test_a_lake_batch_at_the_spec_rate_ends_with_a_gc_and_under_load_does_not(
    spark: SparkSession, stack: Settings, job: JobSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "GIVE_BACK_ABOVE", 0.0)  # whatever this JVM holds now
    empty = bronze_df(spark, [])
    light = pipeline.ServingGate(2.0)  # the serving query idle: the specification's rate
    assert light.light
    report = pipeline.LakeProcessor(spark, job, APP, gate=light).process(empty, 0)
    assert "gc" in report.durations_ms
    loaded = pipeline.ServingGate(2.0)
    for _ in range(2):  # serving batches back to back: under load
        with loaded.serving():
            time.sleep(0.05)
    assert not loaded.light
    report = pipeline.LakeProcessor(spark, job, APP, gate=loaded).process(empty, 1)
    assert "gc" not in report.durations_ms


def test_a_lake_batch_run_again_after_its_gold_committed_projects_the_same_statistics(
    spark: SparkSession, stack: Settings, job: JobSettings, fixtures_dir: Path
) -> None:
    _, first = load_users(fixtures_dir, "nat-FR.json")
    _, second = load_users(fixtures_dir, "nat-BR.json")
    raw = [
        bronze_df(spark, [bronze_row(encode(envelope(users, batch_id=f"b-{n}", seq=n)), n)])
        for n, users in enumerate((first, second))
    ]
    lake = pipeline.LakeProcessor(spark, job, APP)
    lake.process(raw[0], 0)  # the first batch: gold from all of silver
    report = lake.process(raw[1], 1)  # then incremental: previous gold + the batch's new users
    assert report.new_users == len(second)
    after = _stats(stack)
    everyone = first + second
    countries = dict(_rows(stack, "SELECT country, count_users FROM country_stats"))
    genders = dict(_rows(stack, "SELECT gender, count_users FROM gender_stats"))
    assert countries == Counter(u["location"]["country"] for u in everyone)
    assert genders == Counter(u["gender"] for u in everyone)

    # The gold lane retried in the same process after its overwrite committed...
    lake.update_gold(
        1, dt.datetime.now(dt.UTC), lake.new_users(1).select("user_id", "country", "gender", "age")
    )
    assert _stats(stack) == after
    # ...and the whole batch run again by a restarted job (nothing kept in memory).
    pipeline.LakeProcessor(spark, job, APP).process(raw[1], 1)
    assert _stats(stack) == after


def test_an_erasure_that_empties_groups_deletes_them_from_gold_and_cassandra(
    spark: SparkSession, stack: Settings, job: JobSettings, fixtures_dir: Path
) -> None:
    """erase.recompute_gold after every Brazilian left silver: Brazil (and any age band only
    they were in) leaves gold and the statistics tables; every other group is recomputed."""
    _, french = load_users(fixtures_dir, "nat-FR.json")
    _, brazilians = load_users(fixtures_dir, "nat-BR.json")
    lake = pipeline.LakeProcessor(spark, job, APP)
    for n, users in enumerate((french, brazilians)):
        lake.process(bronze_df(spark, [bronze_row(encode(envelope(users, batch_id=f"e-{n}", seq=n)), n)]), n)
    silver_path = job.table("silver_users")
    leaving = delta.read_delta(spark, silver_path).where(F.col("country") == "Brazil").collect()
    assert len(leaving) == len(brazilians)
    DeltaTable.forPath(spark, silver_path).delete(F.col("country") == "Brazil")

    updated = erase.recompute_gold(spark, job, leaving, "req-emptied")

    def measures(rows: list[Row]) -> set[tuple[Any, ...]]:
        return {(r.dimension, r.group_key, r.count_users, r.sum_age) for r in rows}

    now = dt.datetime.now(dt.UTC)
    silver = delta.read_delta(spark, silver_path)
    want = measures(silver.transform(aggregates.gold_stats(now)).collect())
    assert measures(delta.read_delta(spark, job.table(pipeline.GOLD_TABLE)).collect()) == want
    assert ("country", "Brazil") not in {(d, k) for d, k, *_ in want}
    assert _rows(stack, "SELECT country, count_users FROM country_stats") == [("France", len(french))]
    for dimension, table, _ in aggregates.DIMENSIONS:
        expected = sorted((k, n) for d, k, n, _ in want if d == dimension)
        assert _rows(stack, f"SELECT {dimension}, count_users FROM {table}") == expected
    touched = {
        (d, k)
        for d, k, *_ in measures(
            spark.createDataFrame(leaving, silver.schema).transform(aggregates.gold_stats(now)).collect()
        )
    }
    assert updated == {
        table: sum(1 for d, k, *_ in want if d == dimension and (d, k) in touched)
        for dimension, table, _ in aggregates.DIMENSIONS
    }
