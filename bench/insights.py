"""Every insight analysis at volume: seconds per analysis at 100,000 and 1,000,000 users.

Run by `make bench` through the job's own launcher (its jars and configuration):

    scripts/spark-submit.sh bench/insights.py [--sizes 100000,1000000] [--mongo-max 100000]

A namespace of its own: keyspace `random_user_keyspace_insights_bench`, database
`randomUserDB_insights_bench`, a lake under .stack/ (removed at the end), so nothing of the
demo, the tests or the other benchmarks is touched; both are emptied first.

Users come from the producer's offline generator (ingest.generator: all 21 nationalities,
their real name, city and date distributions, 2 % malformed), enveloped as producer.py sends
them, fetched over the 24 hours before the run. They are loaded in chunks through the job's
own steps: bronze append, quality rules, enrich, one row per user into silver, the
quarantine; Cassandra `latest_users` and a `quality_metrics` row per chunk; gold updated per
chunk (so it has versions to travel to) and projected to the Cassandra aggregates. Sizes
grow one into the next (the 1M lake is the 100k lake plus 900k users). Up to --mongo-max
users the documents go to MongoDB too, and one `$count` and one `$group` there are timed:
the reason no analysis runs on it.

Then every analysis runs twice: first by the real command, `python -m analytics` (its
own Spark start, Cassandra as the reader account: what `make insights` meets), then in this
process, whose Spark is warm. Results: bench/results/insights.json; progress on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymongo import MongoClient  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from analytics import catalogue, model, run  # noqa: E402
from bench.harness import say, write_result  # noqa: E402
from common import clients, job_settings  # noqa: E402
from common.job_settings import JobSettings  # noqa: E402
from common.settings import Settings  # noqa: E402
from ingest.envelope import make_batch, messages  # noqa: E402
from ingest.generator import LocalGenerator  # noqa: E402
from jobs.core import aggregates, projections, quality, transform  # noqa: E402
from jobs.core.schema import BRONZE_SCHEMA  # noqa: E402
from jobs.io.cassandra import write_cassandra  # noqa: E402
from jobs.io.delta import append_idempotent, overwrite_idempotent, read_delta, read_delta_if_exists  # noqa: E402
from jobs.io.mongo import write_mongo  # noqa: E402
from jobs.io.session import spark_session  # noqa: E402
from jobs.pipeline import GOLD_TABLE, gold_projections  # noqa: E402
from jobs.preflight import CASSANDRA_TABLES  # noqa: E402
from ops import cassandra_setup, mongo_setup  # noqa: E402

TOPIC = "random_user_data_insights_bench"
KEYSPACE, DATABASE = "random_user_keyspace_insights_bench", "randomUserDB_insights_bench"
APP = "bench-insights"
SPAN = dt.timedelta(hours=24)  # users fetched over the day before the run
MAX_MESSAGE = 1_048_576


def prepare_namespace(s: Settings) -> None:
    """Keyspace (the project's DDL and grants) and database, created like the real ones, emptied."""
    cassandra_setup.setup(s.cassandra)
    with clients.cassandra_session(s.cassandra, s.cassandra.admin, KEYSPACE) as session:
        for table in CASSANDRA_TABLES:
            session.execute(f"TRUNCATE {KEYSPACE}.{table}", timeout=120)
    with clients.mongo_client(s, s.mongo.admin) as client:
        # Collections dropped, not the database (see bench.harness.prepare_namespace).
        for name in ("randomUserCollection", "anomalies"):
            client[DATABASE].drop_collection(name)
    mongo_setup.setup(s)


def kafka_rows(
    generator: LocalGenerator, first: int, count: int, total: int, per_message: int, start: dt.datetime
) -> list[tuple[Any, ...]]:
    """Messages `first`.. of a run of `total`, as the Kafka source gives them, fetched evenly
    over [start, start + SPAN): bronze's timestamp and the users' ingestion time."""
    rows: list[tuple[Any, ...]] = []
    for seq in range(first, first + count):
        fetched = start + SPAN * seq / total
        batch = make_batch(generator.document(per_message, fetched), "local", APP, seq, fetched)
        for message in messages(batch, MAX_MESSAGE):
            rows.append(
                (
                    message.key,
                    message.value,
                    TOPIC,
                    seq % 3,
                    seq // 3,
                    fetched.replace(tzinfo=None),
                    0,
                    message.headers,
                )
            )
    return rows


class Loader:
    """The job's own steps on chunks of generated users, timed per store."""

    def __init__(self, spark: SparkSession, job: JobSettings, per_message: int, malformed: float) -> None:
        self.spark, self.job, self.per_message = spark, job, per_message
        self.generator = LocalGenerator(seed="bench-insights", malformed_rate=malformed)
        self.now = dt.datetime.now(dt.UTC)
        self.start = self.now - SPAN
        self.seconds: dict[str, float] = {}
        self.chunks = 0
        self.messages = 0
        self.valid = 0
        self.quarantined = 0

    def _timed(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = action()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        return value

    def load(self, users: int, total_users: int, chunk: int, mongo: bool) -> None:
        """Add `users` users (of a run that will reach `total_users`) in chunks of `chunk`."""
        per = self.per_message
        total_messages = total_users // per
        done = 0
        while done < users:
            count = min(chunk, users - done) // per
            self._chunk(self.messages, count, total_messages, mongo)
            self.messages += count
            done += count * per
            say("insights", f"  loaded {done:>9,} / {users:,} users")
        self._timed("gold", self.project_gold)

    def _chunk(self, first: int, count: int, total: int, mongo: bool) -> None:
        spark, job, batch_id = self.spark, self.job, self.chunks
        self.chunks += 1
        key, version = job.common.pseudonym.key, job.common.pseudonym.key_version
        rows = self._timed(
            "generate", lambda: kafka_rows(self.generator, first, count, total, self.per_message, self.start)
        )
        raw = spark.createDataFrame(rows, BRONZE_SCHEMA).persist()
        checked = quality.with_reasons(transform.users_from_bronze(raw)).persist()
        enriched = quality.valid(checked).transform(transform.enrich_users(key, version, self.now))
        silver_rows = aggregates.latest_per_user(enriched).select(
            "*", F.lit(APP).alias("first_app_id"), F.lit(batch_id).cast("bigint").alias("first_batch_id")
        )
        new_users = silver_rows.persist()
        try:
            self._timed("bronze", lambda: append_idempotent(raw, job.table("bronze"), APP, batch_id))
            bad = quality.quarantined(checked).transform(quality.quarantine_raw(self.now))
            self._timed("quarantine", lambda: append_idempotent(bad, job.table("quarantine"), APP, batch_id))
            # Every generated user is new (fresh uuids): an append is what the MERGE would do.
            self._timed(
                "silver", lambda: append_idempotent(new_users, job.table("silver_users"), APP, batch_id)
            )
            metrics = quality.batch_metrics(checked).first()
            assert metrics is not None
            self.valid += metrics.valid
            self.quarantined += metrics.quarantined
            batch_time = raw.agg(F.max("timestamp")).first()[0]  # type: ignore[index]
            quality_row = quality.batch_metrics(checked).select(
                transform.utc_date(F.lit(batch_time).cast("timestamp")).alias("day"),
                F.lit(batch_time).cast("timestamp").alias("batch_time"),
                F.lit(batch_id).cast("bigint").alias("batch_id"),
                "*",
                F.lit(0).cast("bigint").alias("duplicates_across"),
            )

            def cassandra() -> None:
                write_cassandra(projections.to_latest_users_rows(new_users), job, "latest_users")
                write_cassandra(quality_row, job, "quality_metrics")

            self._timed("cassandra", cassandra)
            self._timed("gold", lambda: self._gold(batch_id, new_users))
            if mongo:
                self._timed(
                    "mongo",
                    lambda: write_mongo(
                        projections.to_mongo_documents(new_users), job, "randomUserCollection"
                    ),
                )
        finally:
            for df in (new_users, checked, raw):
                df.unpersist()

    def _gold(self, batch_id: int, new_users: DataFrame) -> None:
        """Previous gold + this chunk's users, one version per chunk (as jobs.pipeline.update_gold)."""
        added = new_users.select("country", "gender", "age")
        path = self.job.table(GOLD_TABLE)
        previous = read_delta_if_exists(self.spark, path)
        increment = added.transform(aggregates.gold_stats(self.now))
        rows = (
            increment
            if previous is None
            else aggregates.add_increment(previous, increment, aggregates.GOLD_KEY, self.now)
        )
        overwrite_idempotent(rows, path, APP, batch_id)

    def project_gold(self) -> None:
        """Gold to the Cassandra aggregates, absolute values (as jobs.pipeline.gold_projections)."""
        for write in gold_projections(read_delta(self.spark, self.job.table(GOLD_TABLE)), self.job):
            write()


def mongo_reference(s: Settings) -> dict[str, Any]:
    """One $count and one $group by gender over the collection, as the reader account."""
    client: MongoClient[dict[str, Any]] = MongoClient(s.mongo.uri(s.mongo.reader), socketTimeoutMS=3_600_000)
    try:
        coll = client[DATABASE]["randomUserCollection"]
        out: dict[str, Any] = {}
        for name, pipeline in (
            ("count", [{"$count": "users"}]),
            ("group_by_gender", [{"$group": {"_id": "$gender", "users": {"$sum": 1}}}]),
        ):
            started = time.perf_counter()
            docs = list(coll.aggregate(pipeline))
            out[f"{name}_seconds"] = round(time.perf_counter() - started, 2)
            say("insights", f"  mongo {name:<16} {out[f'{name}_seconds']:8.2f} s  {docs[:3]}")
        out["documents"] = coll.estimated_document_count()
        return out
    finally:
        client.close()


def run_command(out: Path) -> tuple[float, dict[str, dict[str, Any]]]:
    """`python -m analytics` on the bench namespace, as `make insights` runs it (its own Spark
    start): wall seconds, and each analysis's seconds, rows and error from its report."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "analytics", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    report = out / "insights.json"
    if not report.is_file():
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"python -m analytics exited {proc.returncode} without a report: {tail}")
    items = json.loads(report.read_text())
    outcomes = {
        item["name"]: {
            "seconds": item["seconds"],
            "rows": None if item["result"] is None else len(item["result"]["rows"]),
            "error": item["error"],
        }
        for item in items
    }
    return wall, outcomes


def run_analyses(spark: SparkSession, s: Settings, lake: Path, now: dt.datetime, out: Path) -> dict[str, Any]:
    """Every analysis by the real command (first: a fresh Spark, as `make insights`), then again
    in this warm process: per analysis its store, rows, seconds of each run and any error."""
    wall, first = run_command(out)
    say("insights", f"  python -m analytics: {wall:.0f} s in all (Spark start included)")
    results: list[dict[str, Any]] = []
    with clients.cassandra_session(s.cassandra, s.cassandra.reader) as session:
        src = model.Sources(
            cassandra=session, keyspace=KEYSPACE, spark=spark, tables=model.lake_tables(lake), now=now
        )
        warm = {o.name: o for o in run.run_analyses(catalogue.ANALYSES, src)}
    for a in catalogue.ANALYSES:
        cold, hot = first.get(a.name, {"seconds": None, "rows": None, "error": "not run"}), warm[a.name]
        entry = {
            "name": a.name,
            "store": a.store,
            "rows": cold["rows"],
            "seconds_first": cold["seconds"],
            "seconds_warm": round(hot.seconds, 2),
            "error": cold["error"] or hot.error,
        }
        results.append(entry)
        say(
            "insights",
            f"  {a.store:<9} {a.name:<28} first {cold['seconds'] or 0:7.2f} s  warm {hot.seconds:7.2f} s  "
            + (f"{entry['rows']} rows" if not entry["error"] else f"FAILED {entry['error']}"),
        )
    return {"insights_command_seconds": round(wall, 1), "analyses": results}


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    if not sizes or sizes[0] <= 0:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: positive user counts, comma-separated")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=[100_000, 1_000_000], help="users, comma-separated")
    parser.add_argument("--mongo-max", type=int, default=100_000, help="load MongoDB up to this size")
    parser.add_argument("--per-message", type=int, default=100, help="users per Kafka message")
    parser.add_argument("--chunk", type=int, default=50_000, help="users per loading step")
    parser.add_argument("--malformed-rate", type=float, default=0.02)
    parser.add_argument("--keep-lake", action="store_true", help="keep the lake (its path is printed)")
    args = parser.parse_args()
    os.environ.update(KAFKA_TOPIC=TOPIC, CASSANDRA_KEYSPACE=KEYSPACE, MONGO_DATABASE=DATABASE)
    workdir = Path(tempfile.mkdtemp(prefix="bench-insights-", dir=ROOT / ".stack"))
    os.environ.update(
        LAKE_DIR=str(workdir / "lake"), CHECKPOINT_DIR=str(workdir / "checkpoints"), SPARK_UI_PORT="4192"
    )
    job = job_settings.load()
    s = job.common
    say("insights", f"namespace {KEYSPACE} / {DATABASE}, emptied; lake {job.lake_dir}")
    prepare_namespace(s)
    spark = spark_session(job, "bench_insights")
    spark.sparkContext.setLogLevel("WARN")
    loader = Loader(spark, job, args.per_message, args.malformed_rate)
    phases: list[dict[str, Any]] = []
    try:
        loaded = 0
        for size in args.sizes:
            mongo = size <= args.mongo_max
            say("insights", f"{size:,} users: loading {size - loaded:,} more (MongoDB too: {mongo})")
            before = dict(loader.seconds)
            started = time.perf_counter()
            loader.load(size - loaded, args.sizes[-1], args.chunk, mongo)
            load_seconds = time.perf_counter() - started
            loaded = size
            phase: dict[str, Any] = {
                "users": size,
                "valid_users": loader.valid,
                "quarantined_rows": loader.quarantined,
                "load": {
                    "users": size - (phases[-1]["users"] if phases else 0),
                    "seconds": round(load_seconds, 1),
                    "users_per_s": round((size - (phases[-1]["users"] if phases else 0)) / load_seconds),
                    "seconds_by_step": {
                        k: round(v - before.get(k, 0.0), 1) for k, v in loader.seconds.items()
                    },
                },
                "lake_mib": round(
                    sum(f.stat().st_size for f in job.lake_dir.rglob("*") if f.is_file()) / 2**20
                ),
                "mongo_reference": mongo_reference(s) if mongo else None,
            }
            say("insights", f"{size:,} users loaded in {load_seconds:.0f} s; running every analysis")
            phase.update(
                run_analyses(spark, s, job.lake_dir, dt.datetime.now(dt.UTC), workdir / f"report-{size}")
            )
            slowest = max(phase["analyses"], key=lambda a: a["seconds_first"] or 0.0)
            phase["slowest_first"] = {"name": slowest["name"], "seconds": slowest["seconds_first"]}
            phases.append(phase)
            write_result("insights", _payload(args, phases, partial=size != args.sizes[-1]))
    finally:
        spark.stop()
        if not args.keep_lake:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _payload(args: argparse.Namespace, phases: list[dict[str, Any]], partial: bool) -> dict[str, Any]:
    return {
        "complete": not partial,
        "namespace": {"keyspace": KEYSPACE, "database": DATABASE},
        "users_per_message": args.per_message,
        "chunk_users": args.chunk,
        "malformed_rate": args.malformed_rate,
        "sizes": phases,
    }


if __name__ == "__main__":
    sys.exit(main())
