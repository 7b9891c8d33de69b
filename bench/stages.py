"""Each stage's ceiling on its own, so the bottleneck is named by measurement.

Run by `make bench` through the job's own launcher, with the job's jars and configuration:

    scripts/spark-submit.sh bench/stages.py [--users 20000] [--per-message 100]

Users come from the producer's offline generator (varied, all 21 nationalities), enveloped
and encoded exactly as producer.py sends them, as Kafka-shaped rows (the bronze schema).
Then, each timed alone on those rows (users/s = users / wall seconds):

  full_batch      jobs.pipeline.LakeProcessor on all of them (a fresh lake): the real thing
  parse_enrich    parse, explode, quality rules, enrich, pseudonymise, dedup (no write)
  parse_enrich_warm    the same again, its code compiled and JIT-warm (as in later batches)
  bronze_append   Delta append of the raw rows
  silver_merge    Delta MERGE of the users into silver already holding the full batch's users
  gold_incremental     the three gold tables + this batch's users (what each batch does)
  gold_full_recompute  the three gold tables recomputed from all of silver (first batch)
  mongo_insert    the Mongo documents, unordered insert (the normal path)
  mongo_upsert    replace-upsert of 200 of them (the path of a rerun after a crash)
  cassandra_users / cassandra_latest   the two user projections

The producer alone is measured by bench/producer_rate.py. Results: bench/results/stages.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from bench.harness import DATABASE, KEYSPACE, TOPIC, prepare_namespace, say, write_result  # noqa: E402
from common import job_settings  # noqa: E402
from ingest.envelope import make_batch, messages  # noqa: E402
from ingest.generator import LocalGenerator  # noqa: E402
from jobs.core import aggregates, projections, quality, transform  # noqa: E402
from jobs.core.schema import BRONZE_SCHEMA  # noqa: E402
from jobs.io import cassandra, delta, mongo  # noqa: E402
from jobs.io.session import spark_session  # noqa: E402
from jobs.pipeline import LakeProcessor  # noqa: E402

# Replace-upserts are slow on FerretDB/SQLite (7 docs/s measured): a small sample says enough.
UPSERT_SAMPLE = 200


def kafka_rows(users: int, per_message: int, seed: str, first_seq: int = 0) -> list[tuple[Any, ...]]:
    """Rows as the Kafka source gives them: one per message of `per_message` users, the
    messages numbered (and their offsets) from `first_seq`."""
    generator = LocalGenerator(seed=seed)
    rows: list[tuple[Any, ...]] = []
    now = dt.datetime.now(dt.UTC)
    for seq in range(first_seq, first_seq + users // per_message):
        batch = make_batch(generator.document(per_message), "local", "bench-stages", seq, now)
        for message in messages(batch, 1_048_576):
            rows.append(
                (
                    message.key,
                    message.value,
                    TOPIC,
                    seq % 3,
                    seq,
                    now.replace(tzinfo=None),
                    0,
                    message.headers,
                )
            )
    return rows


@contextlib.contextmanager
def bench_session(name: str, ui_port: str) -> Iterator[tuple[job_settings.JobSettings, SparkSession]]:
    """The job's settings and Spark session on the bench namespace (emptied first), with a lake
    and checkpoints of their own, removed at the end."""
    os.environ.update(KAFKA_TOPIC=TOPIC, CASSANDRA_KEYSPACE=KEYSPACE, MONGO_DATABASE=DATABASE)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=ROOT / ".stack"))
    os.environ.update(
        LAKE_DIR=str(work / "lake"), CHECKPOINT_DIR=str(work / "checkpoints"), SPARK_UI_PORT=ui_port
    )
    say(name, f"namespace {KEYSPACE} / {DATABASE}, emptied; lake {work}")
    prepare_namespace()
    job = job_settings.load()
    spark = spark_session(job, f"bench_{name}")
    spark.sparkContext.setLogLevel("WARN")
    try:
        yield job, spark
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


def timed(results: dict[str, dict[str, float]], name: str, users: int, action: Callable[[], object]) -> None:
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    results[name] = {"users": users, "seconds": round(seconds, 2), "users_per_s": round(users / seconds)}
    say("stages", f"{name:<16} {users:>7,} users {seconds:7.2f} s  {users / seconds:>9,.0f} users/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=100)
    args = parser.parse_args()
    n, per = args.users, args.per_message
    results: dict[str, dict[str, float]] = {}
    with bench_session("stages", "4191") as (job, spark):
        say("stages", f"generating 2 x {n:,} users in messages of {per}")
        first = spark.createDataFrame(kafka_rows(n, per, "stages-a"), BRONZE_SCHEMA).persist()
        second = spark.createDataFrame(kafka_rows(n, per, "stages-b"), BRONZE_SCHEMA).persist()
        first.count(), second.count()

        processor = LakeProcessor(spark, job, "bench-stages")
        started = time.perf_counter()
        report = processor.process(first, 0)
        seconds = time.perf_counter() - started
        results["full_batch"] = {
            "users": n,
            "seconds": round(seconds, 2),
            "users_per_s": round(n / seconds),
            "sinks_ms": report.durations_ms,  # type: ignore[dict-item]
        }
        say("stages", f"full_batch       {n:>7,} users {seconds:7.2f} s  {n / seconds:>9,.0f} users/s")

        key, version = job.common.pseudonym.key, job.common.pseudonym.key_version
        now = dt.datetime.now(dt.UTC)
        checked = quality.with_reasons(transform.users_from_bronze(second))
        enriched = quality.valid(checked).transform(transform.enrich_users(key, version, now))
        silver_rows = aggregates.latest_per_user(enriched).select(
            "*", F.lit("bench-stages").alias("first_app_id"), F.lit(1).cast("bigint").alias("first_batch_id")
        )
        timed(results, "parse_enrich", n, lambda: silver_rows.write.format("noop").mode("overwrite").save())
        # The same plan again, compiled and JIT-warm: what the job's later batches pay.
        timed(
            results, "parse_enrich_warm", n, lambda: silver_rows.write.format("noop").mode("overwrite").save()
        )
        timed(
            results,
            "bronze_append",
            n,
            lambda: delta.append_idempotent(second, job.table("bronze"), "bench-stages", 1),
        )
        timed(
            results,
            "silver_merge",
            n,
            lambda: delta.merge_insert_new(
                spark, silver_rows, job.table("silver_users"), ["user_id"], "bench-stages", 1
            ),
        )
        new_users = processor.new_users(1).persist()
        new_users.count()
        timed(results, "gold_incremental", n, lambda: processor.update_gold(1, now, new_users))
        timed(
            results, "gold_full_recompute", 2 * n, lambda: processor.update_gold(2, now, new_users, full=True)
        )
        docs = projections.to_mongo_documents(new_users).persist()
        docs.count()
        timed(results, "mongo_insert", n, lambda: mongo.write_mongo(docs, job, "randomUserCollection"))
        sample = docs.limit(UPSERT_SAMPLE).persist()
        sample.count()

        def upsert() -> None:
            (
                sample.write.format("mongodb")
                .mode("append")
                .option("database", DATABASE)
                .option("collection", "randomUserCollection")
                .option("operationType", "replace")
                .option("idFieldList", "_id")
                .option("upsertDocument", "true")
                .save()
            )

        timed(results, "mongo_upsert", UPSERT_SAMPLE, upsert)
        users_rows = projections.to_random_user_rows(new_users).persist()
        latest_rows = projections.to_latest_users_rows(new_users).persist()
        users_rows.count(), latest_rows.count()
        timed(
            results,
            "cassandra_users",
            n,
            lambda: cassandra.write_cassandra(users_rows, job, "random_user_table"),
        )
        timed(
            results,
            "cassandra_latest",
            n,
            lambda: cassandra.write_cassandra(latest_rows, job, "latest_users"),
        )
    write_result(
        "stages",
        {
            "users_per_stage": n,
            "users_per_message": per,
            "sink_concurrency": job.sink_concurrency,
            "stages": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
