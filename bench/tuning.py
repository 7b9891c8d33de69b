"""A/B of Spark settings on the job's two hottest fixed and per-user costs, in one run.

    scripts/spark-submit.sh bench/tuning.py [--users 50000] [--commits 20] [--skip ...] [--label ...]

Each variant runs in the same JVM, one after the other, twice (A B A B ...), so the
machine's speed (which drifts by 1.5x over a day here) is the same for all; the second
round's figures are the warm ones:

  compute   the job's transformations, warm, to a no-op sink (no write): parse + explode
            (the users), + quality rules (with the per-batch window), + enrichment and
            deduplication (the silver rows), and the serving query's rows. Variants of
            spark.sql.codegen.maxFields: Spark leaves out of whole-stage code generation
            every operator whose input or output has more nested fields than that (100 by
            default), and each such projection writes a whole row of its own. (Until
            2026-12-01: spark.sql.codegen.hugeMethodLimit 65535, Spark's default, against
            8000, HotSpot's limit for JIT-compiling a method: tuning_ab_*.json.)
  cache     the lake's cached batch (pipeline.checked_users, persisted) with every user's
            JSON text, and with only the quarantined users' (what the job keeps): its size
            in Spark's storage and the time of the first pass that fills it (the counts).
  commits   an idempotent Delta overwrite of a 25-row table (the size of gold's per-batch
            commit), `--commits` times per variant: median and max seconds. Variants of
            Delta's snapshot partitions and checksum file.
  cassandra the serving query's two Cassandra writes (random_user_table: one partition per
            user; latest_users: one per day) of `--users` users, three rounds: the
            connector's defaults (rows batched only within a partition, 1 KiB batches, 5
            batches in flight per task) against conf/spark-defaults.conf (batched by replica
            set, 2 KiB, 16 in flight). Needs the stack (`make up`): it writes to the bench
            keyspace.

Results: bench/results/tuning.json, or LABEL.json (docs/PERFORMANCE.md, "What was tried").
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyspark.sql import DataFrame, SparkSession  # noqa: E402

from bench.harness import DATABASE, KEYSPACE, TOPIC, prepare_namespace, say, write_result  # noqa: E402
from bench.stages import kafka_rows  # noqa: E402
from common import job_settings  # noqa: E402
from common.job_settings import JobSettings  # noqa: E402
from jobs import pipeline  # noqa: E402
from jobs.core import aggregates, projections, quality, transform  # noqa: E402
from jobs.core.schema import BRONZE_SCHEMA  # noqa: E402
from jobs.io import cassandra, delta  # noqa: E402
from jobs.io.session import spark_session  # noqa: E402

COMPUTE_VARIANTS: dict[str, dict[str, str]] = {
    "maxFields=100 (Spark default)": {"spark.sql.codegen.maxFields": "100"},
    "maxFields=1000": {"spark.sql.codegen.maxFields": "1000"},
}
COMMIT_VARIANTS: dict[str, dict[str, str]] = {
    "as configured": {},
    "snapshotPartitions=1": {"spark.databricks.delta.snapshotPartitions": "1"},
    "no checksum file": {"spark.databricks.delta.writeChecksumFile.enabled": "false"},
}
CASSANDRA_VARIANTS: dict[str, dict[str, str]] = {
    "connector defaults": {
        "spark.cassandra.output.batch.grouping.key": "partition",
        "spark.cassandra.output.batch.size.bytes": "1024",
        "spark.cassandra.output.concurrent.writes": "5",
    },
    "as configured": {},
}
GOLD_SCHEMA = "country string, count_users bigint, sum_age bigint, avg_age double, male_count bigint"


def with_conf(spark: SparkSession, conf: dict[str, str]) -> dict[str, str | None]:
    before = {k: spark.conf.get(k, None) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)
    return before


def restore(spark: SparkSession, before: dict[str, str | None]) -> None:
    for k, v in before.items():
        if v is None:
            spark.conf.unset(k)
        else:
            spark.conf.set(k, v)


def plans(raw: DataFrame, job: JobSettings) -> dict[str, DataFrame]:
    key, version = job.common.pseudonym.key, job.common.pseudonym.key_version
    now = dt.datetime.now(dt.UTC)
    users = transform.users_from_bronze(raw.select(*pipeline.BRONZE_COLUMNS))
    checked = quality.with_reasons(users)
    enriched = quality.valid(checked).transform(transform.enrich_users(key, version, now))
    serving = quality.valid(quality.with_batch_reasons(pipeline.serving_rows(raw, key, version)))
    return {
        "parse + explode": users,
        "+ quality rules": checked,
        "+ enrich + dedup (silver rows)": aggregates.latest_per_user(enriched),
        "serving rows": serving,
    }


def noop(df: DataFrame) -> float:
    started = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def compute(spark: SparkSession, job: JobSettings, users: int) -> dict[str, Any]:
    raw = spark.createDataFrame(kafka_rows(users, 100, "tuning"), BRONZE_SCHEMA).persist()
    raw.count()
    out: dict[str, Any] = {}
    for round_ in (1, 2):
        for variant, conf in COMPUTE_VARIANTS.items():
            before = with_conf(spark, conf)
            try:
                for step, df in plans(raw, job).items():
                    noop(df)  # compiled and JIT-warm first
                    seconds = noop(df)
                    if round_ == 2:
                        out.setdefault(variant, {})[step] = {
                            "seconds": round(seconds, 2),
                            "users_per_s": round(users / seconds),
                        }
                    say("tuning", f"round {round_} {variant:<38} {step:<32} {seconds:6.2f} s")
            finally:
                restore(spark, before)
    raw.unpersist()
    return out


def cached_mib(spark: SparkSession) -> float:
    infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()  # type: ignore[union-attr]
    return sum(i.memSize() + i.diskSize() for i in infos) / 2**20


def cache(spark: SparkSession, users: int) -> dict[str, Any]:
    raw = spark.createDataFrame(kafka_rows(users, 100, "tuning-cache"), BRONZE_SCHEMA).persist()
    raw.count()
    base = cached_mib(spark)
    variants = {
        "every user's JSON": lambda: quality.with_reasons(
            transform.users_from_bronze(raw.select(*pipeline.BRONZE_COLUMNS))
        ),
        "quarantined users' JSON only (the job)": lambda: pipeline.checked_users(raw),
    }
    out: dict[str, Any] = {}
    for round_ in (1, 2):
        for variant, build in variants.items():
            checked = build().persist()
            started = time.perf_counter()
            quality.batch_metrics(checked).first()
            seconds = time.perf_counter() - started
            size = cached_mib(spark) - base
            checked.unpersist(blocking=True)
            if round_ == 2:
                out[variant] = {"cached_mib": round(size), "first_pass_s": round(seconds, 2)}
            say("tuning", f"round {round_} cache {variant:<40} {size:6.0f} MiB  first pass {seconds:5.2f} s")
    raw.unpersist()
    return out


def commits(spark: SparkSession, lake: Path, count: int) -> dict[str, Any]:
    rows = [(f"country-{i}", i, 30 * i, 30.0, i // 2) for i in range(25)]
    out: dict[str, Any] = {}
    for round_ in (1, 2):
        for number, (variant, conf) in enumerate(COMMIT_VARIANTS.items()):
            before = with_conf(spark, conf)
            path = str(lake / f"gold-{round_}-{number}")
            times = []
            try:
                for version in range(count):
                    df = spark.createDataFrame(rows, GOLD_SCHEMA)
                    started = time.perf_counter()
                    delta.overwrite_idempotent(df, path, "tuning", version)
                    times.append(time.perf_counter() - started)
            finally:
                restore(spark, before)
            steady = times[2:]  # the table's creation and the first commit apart
            figures = {
                "median_s": round(statistics.median(steady), 3),
                "max_s": round(max(steady), 3),
                "commits": len(steady),
            }
            if round_ == 2:
                out[variant] = figures
            say("tuning", f"round {round_} commit {variant:<24} median {figures['median_s']:.3f} s")
    return out


def cassandra_writes(spark: SparkSession, job: JobSettings, users: int) -> dict[str, Any]:
    raw = spark.createDataFrame(kafka_rows(users, 100, "tuning-cassandra"), BRONZE_SCHEMA)
    enriched = plans(raw, job)["+ enrich + dedup (silver rows)"]  # one row per generated user
    rows = {
        "random_user_table": projections.to_random_user_rows(enriched).persist(),
        "latest_users": projections.to_latest_users_rows(enriched).persist(),
    }
    for df in rows.values():
        df.count()
    out: dict[str, Any] = {}
    for round_ in (1, 2, 3):  # the first round warms the JVM and Cassandra up
        for variant, options in CASSANDRA_VARIANTS.items():
            for table, df in rows.items():
                writer = (
                    df.write.format(cassandra.CASSANDRA_FORMAT)
                    .mode("append")
                    .option("keyspace", job.common.cassandra.keyspace)
                    .option("table", table)
                )
                for name, value in options.items():
                    writer = writer.option(name, value)
                started = time.perf_counter()
                writer.save()
                seconds = time.perf_counter() - started
                if round_ > 1:
                    out.setdefault(variant, {}).setdefault(table, []).append(
                        {"seconds": round(seconds, 2), "users_per_s": round(users / seconds)}
                    )
                say("tuning", f"round {round_} cassandra {variant:<20} {table:<18} {seconds:6.2f} s")
    for df in rows.values():
        df.unpersist()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--commits", type=int, default=22)
    parser.add_argument("--skip", default="", help="compute,cache,commits,cassandra")
    parser.add_argument("--label", default="tuning", help="results file name (bench/results/LABEL.json)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    lake = Path(tempfile.mkdtemp(prefix="bench-tuning-", dir=ROOT / ".stack"))
    os.environ.update(
        KAFKA_TOPIC=TOPIC,
        CASSANDRA_KEYSPACE=KEYSPACE,
        MONGO_DATABASE=DATABASE,
        LAKE_DIR=str(lake / "lake"),
        CHECKPOINT_DIR=str(lake / "checkpoints"),
        SPARK_UI_PORT="4195",
    )
    if "cassandra" not in skip:
        prepare_namespace()
    job = job_settings.load()
    spark = spark_session(job, "bench_tuning")
    spark.sparkContext.setLogLevel("WARN")
    results: dict[str, Any] = {"users": args.users}
    try:
        if "compute" not in skip:
            results["compute"] = compute(spark, job, args.users)
        if "cache" not in skip:
            results["cache"] = cache(spark, args.users)
        if "commits" not in skip:
            results["commits"] = commits(spark, lake, args.commits)
        if "cassandra" not in skip:
            results["cassandra"] = cassandra_writes(spark, job, args.users)
    finally:
        spark.stop()
    write_result(args.label, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
