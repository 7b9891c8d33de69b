"""A micro-batch without records goes through both paths and writes nothing.

Spark runs one when a query starts at `latest` on a topic with no new records. The lake
path's quality_metrics row of such a batch had no day (its partition key): the Cassandra
write failed, was retried without end, and the lake query never got past batch 0.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from pyspark.sql import SparkSession

from common.settings import Settings
from jobs import pipeline, sinks
from jobs import settings as job_settings
from ops import cassandra_setup
from tests.unit.bronze_rows import bronze_df

T = TypeVar("T")
APP = "test-empty-batch"
BATCH = 987_654


def _once(name: str, action: Callable[[], T], **_: object) -> T:
    return action()


def test_an_empty_batch_passes_both_paths_and_writes_no_quality_row(
    spark: SparkSession, stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write must succeed at its first attempt: the job would retry a failing one forever.
    monkeypatch.setattr(sinks, "with_retries", _once)
    job = dataclasses.replace(job_settings.from_settings(stack), lake_dir=tmp_path / "lake")
    # The job's connector settings (sinks.spark_session) on the shared session, for this test.
    conf = sinks.cassandra_conf(stack, stack.cassandra.writer)
    conf["spark.mongodb.write.connection.uri"] = stack.mongo.uri(stack.mongo.writer, jvm=True)
    previous = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        _empty_batch_through_both_paths(spark, stack, job)
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _empty_batch_through_both_paths(
    spark: SparkSession, stack: Settings, job: job_settings.JobSettings
) -> None:
    empty = bronze_df(spark, [])
    pseudonym = job.common.pseudonym
    serving = pipeline.ServingProcessor(spark, job, APP)
    lake = pipeline.LakeProcessor(spark, job, APP)
    rows = pipeline.serving_rows(empty, pseudonym.key, pseudonym.key_version, dt.datetime.now(dt.UTC))
    serving.process(rows, BATCH)
    report = lake.process(empty, BATCH)
    assert (report.records_in, report.users_in, report.new_users) == (0, 0, 0)
    with cassandra_setup.session(stack.cassandra, stack.cassandra.admin, stack.cassandra.keyspace) as session:
        rows_of_batch = list(
            session.execute(
                "SELECT batch_id FROM quality_metrics WHERE batch_id = %s ALLOW FILTERING", (BATCH,)
            )
        )
    assert rows_of_batch == []
