"""The two paths of a micro-batch: serving (users to the dashboard now) and lake (Delta, aggregates).

The streaming job runs both as two queries on the same topic (jobs/stream_users.py), each
with its own checkpoint; the replay from bronze runs both on each chunk, so live data and
replays go through the very same code. Exactly-once, step by step (docs/ARCHITECTURE.md):

Serving (ServingProcessor, short trigger, FAIR pool `serving`):
  parse, quality, enrich, erasure filter, then idempotent writes keyed by identities the
  producer stamped once at fetch: Cassandra `random_user_table` and `latest_users` upsert on
  (user_id, fetch time); Mongo inserts with `_id` = user id, a duplicate key (a rerun, or the
  person already delivered) is skipped per document. Nothing is read back, nothing added up.

Lake (LakeProcessor, longer trigger that amortises Delta's fixed cost, FAIR pool `lake`):
  1. bronze and the Delta quarantine are appended under (app_id, batch_id): a rerun is skipped;
  2. Mongo `anomalies` by deterministic `_id` (topic-partition-offset-position), insert-or-skip;
  3. silver MERGE inserts only user ids it does not have, stamping (first_app_id,
     first_batch_id), guarded by (app_id, batch_id);
  4. the users this batch added are read back from silver by that stamp, so a rerun after a
     crash finds exactly the same set, whether or not step 3 ran the first time;
  5. gold (every statistic, one Delta table: one commit) = previous gold + the aggregates of
     those users, computed once, replaced under (app_id, batch_id); the very rows computed
     are projected to the Cassandra statistics tables (absolute values);
  6. one quality_metrics row per batch, from one evaluation of the batch's counts.
Only when a processor returned does Spark commit the batch in that query's checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StructField, StructType, TimestampType

from common.job_settings import JobSettings
from jobs import poison_batches
from jobs.core import aggregates, erasure, projections, quality, transform
from jobs.io import cassandra, delta, mongo, retry

log = logging.getLogger(__name__)

BRONZE_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp", "timestampType", "headers")

# The lake table of every statistic (aggregates.gold_stats), projected to one Cassandra table
# per dimension (gold_projections).
GOLD_TABLE = "gold_stats"
# The FAIR scheduler pools of conf/fairscheduler.xml: the serving path is weighted first.
SERVING_POOL, LAKE_POOL = "serving", "lake"

Step = tuple[str, Callable[[], object]]
YIELD = "yield"  # a lake batch's time spent waiting for serving batches (BatchReport.durations_ms)
# At the specification's rate the lake has G1 give back the heap above this share of its
# maximum (LakeProcessor.give_back_memory).
GIVE_BACK_ABOVE = 0.5


@dataclass
class BatchReport:
    batch_id: int
    query: str = "lake"
    records_in: int = 0
    users_in: int = 0
    valid: int = 0
    quarantined: int = 0
    new_users: int = 0
    durations_ms: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_ms(self, name: str, seconds: float) -> None:
        """Add to a duration that several lanes contribute to (gold's Cassandra tables, the lake's yields)."""
        with self._lock:
            self.durations_ms[name] = self.durations_ms.get(name, 0) + round(seconds * 1000)

    def line(self) -> str:
        sinks_ms = " ".join(f"{k}={v}" for k, v in self.durations_ms.items())
        if self.query == "serving":  # counts nothing (no extra Spark job): the listener has the records
            return f"{self.query} batch {self.batch_id}: ms[{sinks_ms}]"
        return (
            f"{self.query} batch {self.batch_id}: records={self.records_in} users={self.users_in} "
            f"valid={self.valid} quarantined={self.quarantined} new={self.new_users} ms[{sinks_ms}]"
        )


class ServingGate:
    """The lake steps aside while a serving batch runs, at the specification's rate.

    Both queries share the driver's cores, and the FAIR pools order tasks, not CPU: a lake
    step running beside a serving batch slows the users' way to the dashboard (measured: the
    fetches that landed during a lake batch made freshness's p95). So before each of its steps
    the lake waits for the running serving batch to end, at most `max_wait_s`, and only while
    the serving query is idle at least half of the time (the specification's rate). Under
    load, when serving batches come back to back, the lake does not wait: it must keep up too.
    """

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self._idle = threading.Event()
        self._idle.set()
        self._last_s = 0.0  # how long the last serving batch took
        self._period_s = math.inf  # from the start of the one before it to the start of the last
        self._started = -math.inf

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Around one serving batch."""
        self._idle.clear()
        start = time.monotonic()
        self._period_s, self._started = start - self._started, start
        try:
            yield
        finally:
            self._last_s = time.monotonic() - start
            self._idle.set()

    @property
    def light(self) -> bool:
        """The serving query is idle at least half of the time (the specification's rate):
        the lake steps aside and runs its lanes one at a time. Under load (serving batches
        back to back) it does neither. The length of a serving batch alone says nothing: a
        lake batch running beside it is what makes it long (seen while the JVM warms up)."""
        return self._last_s <= self._period_s / 2

    def wait(self) -> float:
        """Before a lake step: the seconds waited for the serving batch (0 when none runs)."""
        if self._idle.is_set() or not self.light:
            return 0.0
        start = time.monotonic()
        self._idle.wait(self.max_wait_s)
        return time.monotonic() - start


def run_lanes(
    lanes: list[Callable[[], None]], concurrency: int, before: Callable[[], None] | None = None
) -> None:
    """Run the lanes, at most `concurrency` at a time; the first error is raised after all ended.

    `before` runs first in each lane's thread (e.g. to set the thread's scheduler pool).
    """

    def wrapped(run: Callable[[], None]) -> Callable[[], None]:
        def lane() -> None:
            if before is not None:
                before()
            run()

        return lane

    if concurrency <= 1 or len(lanes) == 1:
        for run in lanes:
            run()
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sink-lane") as pool:
        futures = [pool.submit(wrapped(run)) for run in lanes]
    for future in futures:
        future.result()


def gold_projections(gold: DataFrame, job: JobSettings) -> list[Callable[[], None]]:
    """Gold's rows into the Cassandra statistics tables, one write per table (absolute values:
    a rerun writes the same). The job, the erasure and the replay all project gold this way."""

    def write(dimension: str, table: str) -> Callable[[], None]:
        return lambda: cassandra.write_cassandra(
            projections.to_statistics_rows(gold, dimension, table), job, table
        )

    return [write(dimension, table) for dimension, table, _ in aggregates.DIMENSIONS]


def checked_users(raw: DataFrame) -> DataFrame:
    """Kafka rows -> one row per user (or per bad message) with its quality `reasons`.

    A user's JSON text is kept for the quarantined ones only (their `raw_json`): no later
    step reads a valid user's, and the lake caches this batch (about half its bytes).
    """
    checked = quality.with_reasons(transform.users_from_bronze(raw.select(*BRONZE_COLUMNS)))
    return checked.withColumn("user_json", F.when(F.size("reasons") > 0, F.col("user_json")))


def serving_rows(raw: DataFrame, key: bytes, key_version: int) -> DataFrame:
    """Kafka rows -> the users the serving path may write, enriched but for their processed
    time (ServingProcessor stamps it), with the `reasons` of the rules of one row
    (ServingProcessor adds the per-batch ones, then keeps the valid users).

    Row by row, so the streaming job makes it part of the serving query's own plan: built
    once when the query starts, not again in Python for every micro-batch (that cost ~0.6 s
    a batch). Rows that cannot be a valid user (no parsed user, no well-formed uuid) are
    left out here; the lake path quarantines them. No per-batch value is in it, so its
    generated code is the same for every batch and compiled once.
    """
    rows = quality.with_row_reasons(transform.users_from_bronze(raw.select(*BRONZE_COLUMNS)))
    return rows.where(F.col(quality.BATCH_KEY).isNotNull()).transform(
        transform.enrich_users(key, key_version, None, keep=("reasons", quality.BATCH_KEY))
    )


class _Processor:
    """What both paths share: settings, retries, timing, lanes, the erasure ledger."""

    query = "lake"
    pool = LAKE_POOL

    def __init__(
        self,
        spark: SparkSession,
        job: JobSettings,
        app_id: str,
        *,
        retry_base_delay: float = 1.0,
        on_report: Callable[[BatchReport], None] | None = None,
        checkpoint: Path | None = None,
        gate: ServingGate | None = None,
    ) -> None:
        self.spark = spark
        self.checkpoint = checkpoint
        # Shared by the two queries of the streaming job; the replay runs them one after the other.
        self.gate = gate
        self.job = job
        self.app_id = app_id
        self.retry_base_delay = retry_base_delay
        self.on_report = on_report
        self._ledger = delta.CachedDeltaTable(spark, job.table(erasure.LEDGER_TABLE))

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        """foreachBatch: process the batch; one that keeps failing while every server answers is
        processed in parts, its records that fail alone quarantined (jobs/poison_batches.py).

        Without a checkpoint (the replay) there is no attempt ledger: a failure is the caller's.
        """
        self.use_pool()
        if self.checkpoint is None:
            self.process(raw, batch_id)
            return
        poison_batches.run_batch(
            self, raw, batch_id, lake=isinstance(self, LakeProcessor), new_report=BatchReport
        )

    def process(self, raw: DataFrame, batch_id: int) -> BatchReport:
        raise NotImplementedError

    def batch_time(self, batch_id: int) -> dt.datetime:
        """When Spark planned this batch, as its checkpoint recorded it (`processed_time`).

        The same on a rerun after a crash, so a rerun writes the very same rows. Without a
        checkpoint (the replay) or before Spark wrote it: now.
        """
        if self.checkpoint is not None:
            try:
                lines = (self.checkpoint / "offsets" / str(batch_id)).read_text().splitlines()
                millis = int(json.loads(lines[1])["batchTimestampMs"])
                return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
            except (OSError, IndexError, KeyError, ValueError):
                log.warning("no batch time for batch %d in %s: using the clock", batch_id, self.checkpoint)
        return dt.datetime.now(dt.UTC)

    def use_pool(self) -> None:
        """Jobs started from this thread run in this path's FAIR pool."""
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", self.pool)

    def step_aside(self, report: BatchReport | None) -> None:
        """Before a step: nothing here; the lake waits for a running serving batch (LakeProcessor)."""

    def concurrency(self, lanes: int) -> int:
        """Lanes written at a time."""
        return min(lanes, self.job.sink_concurrency)

    def _timed(self, report: BatchReport, name: str, action: Callable[[], object]) -> None:
        self.step_aside(report)
        start = time.monotonic()
        retry.with_retries(
            name, action, base_delay=self.retry_base_delay, stall_timeout=self.job.sink_stall_timeout_s
        )
        report.durations_ms[name] = round((time.monotonic() - start) * 1000)

    def _run(self, report: BatchReport, lanes: list[list[Step]]) -> None:
        def lane(steps: list[Step]) -> Callable[[], None]:
            def run() -> None:
                for name, action in steps:
                    self._timed(report, name, action)

            return run

        todo = [lane(steps) for steps in lanes if steps]
        run_lanes(todo, self.concurrency(len(todo)), self.use_pool)

    def _finish(self, report: BatchReport, t0: float) -> BatchReport:
        report.durations_ms["total"] = round((time.monotonic() - t0) * 1000)
        log.info(report.line())
        if self.on_report is not None:
            self.on_report(report)
        return report

    def erasure_ledger(self) -> DataFrame | None:
        """The erasure ledger (subject keys only), or None before the first erasure.

        Re-read only when the table has a new version (one listing of its log per batch).
        """
        return self._ledger.get()

    def without_erased(self, users: DataFrame) -> DataFrame:
        """People who asked to be erased never come back, whether from Kafka or a replay."""
        return erasure.without_erased(users, self.erasure_ledger(), self.job.common.pseudonym.key)

    def enriched(self, checked: DataFrame) -> DataFrame:
        """The batch's valid users, enriched but for their processed time
        (transform.with_processed_time), without the people who asked to be erased."""
        key, key_version = self.job.common.pseudonym.key, self.job.common.pseudonym.key_version
        return self.without_erased(
            quality.valid(checked).transform(transform.enrich_users(key, key_version, None))
        )


class ServingProcessor(_Processor):
    """foreachBatch of the serving query: the users of the batch into the dashboard's tables and Mongo.

    Its input is serving_rows (the job: the query's own plan; the replay: a chunk of bronze
    through the same function). No Delta, no count, no read-back: the per-batch quality
    rules, the erasure filter, then three idempotent writes in parallel lanes from one
    cached DataFrame.
    """

    query = "serving"
    pool = SERVING_POOL

    def process(self, rows: DataFrame, batch_id: int) -> BatchReport:
        report = BatchReport(batch_id, query=self.query)
        t0 = time.monotonic()
        with self.gate.serving() if self.gate is not None else contextlib.nullcontext():
            cached = self.without_erased(
                quality.valid(quality.with_batch_reasons(rows)).drop("reasons")
            ).persist()
            # The batch's planned time (the same on a rerun), stamped after the cache: the
            # stage that parses and enriches holds no per-batch literal, its code is reused.
            users = cached.transform(transform.with_processed_time(self.batch_time(batch_id)))
            try:
                self._run(report, self.steps(users))
            finally:
                cached.unpersist()
        return self._finish(report, t0)

    def steps(self, users: DataFrame) -> list[list[Step]]:
        """The serving writes, one lane each, the dashboard's tables first."""
        job = self.job
        # Within one batch a person fetched twice keeps one document: the newest fetch.
        documents = projections.to_mongo_documents(aggregates.latest_per_user(users))
        return [
            [
                (
                    "cassandra_latest",
                    lambda: cassandra.write_cassandra(
                        projections.to_latest_users_rows(users), job, "latest_users"
                    ),
                )
            ],
            [
                (
                    "cassandra_users",
                    lambda: cassandra.write_cassandra(
                        projections.to_random_user_rows(users), job, "random_user_table"
                    ),
                )
            ],
            [("mongo_users", lambda: mongo.write_mongo(documents, job, "randomUserCollection"))],
        ]


class LakeProcessor(_Processor):
    """foreachBatch of the lake query: bronze, quarantine, silver, gold, statistics, quality.

    `write_bronze=False`: the replay (jobs/replay_bronze.py) reads bronze, never appends to it.
    """

    query = "lake"
    pool = LAKE_POOL

    def __init__(self, *args: object, write_bronze: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.write_bronze = write_bronze
        self._quarantine_exists = False
        self._gold = delta.CachedDeltaTable(self.spark, self.job.table(GOLD_TABLE), collect=True)

    def step_aside(self, report: BatchReport | None) -> None:
        """Wait for a serving batch that is running while the serving query is light (ServingGate)."""
        if self.gate is None:
            return
        waited = self.gate.wait()
        if waited and report is not None:
            report.add_ms(YIELD, waited)

    def concurrency(self, lanes: int) -> int:
        """One lane at a time while the serving query is light, leaving a core to it."""
        return 1 if self.gate is not None and self.gate.light else super().concurrency(lanes)

    def process(self, raw: DataFrame, batch_id: int) -> BatchReport:
        report = BatchReport(batch_id, query=self.query)
        started = self.batch_time(batch_id)
        t0 = time.monotonic()
        app, job = self.app_id, self.job
        raw = raw.select(*BRONZE_COLUMNS).persist()
        cached: list[DataFrame] = [raw]
        try:
            if self.write_bronze:
                self._timed(
                    report, "bronze", lambda: delta.append_idempotent(raw, job.table("bronze"), app, batch_id)
                )
            checked = checked_users(raw).persist()
            cached.append(checked)
            # One evaluation of the batch's counts: the report and the quality_metrics row.
            counts = quality.batch_metrics(checked).crossJoin(
                checked.agg(
                    F.max("kafka_timestamp").alias("batch_time"),
                    transform.utc_date(F.max("kafka_timestamp")).alias("day"),
                    F.count_distinct(F.when(F.size("reasons") == 0, F.col("user.login.uuid"))).alias(
                        "valid_people"
                    ),
                )
            )
            first: list[Row | None] = []
            self._timed(report, "counts", lambda: first.append(counts.first()))
            row = first[-1]
            assert row is not None
            report.records_in, report.users_in = row.records_in, row.users_in
            report.valid, report.quarantined = row.valid, row.quarantined

            bad = quality.quarantined(checked)
            key, key_version = job.common.pseudonym.key, job.common.pseudonym.key_version
            # The per-batch values after the deduplication's shuffle, out of the heavy stage.
            silver_rows = (
                aggregates.latest_per_user(self.enriched(checked))
                .transform(transform.with_processed_time(started))
                .select(
                    "*",
                    F.lit(app).alias("first_app_id"),
                    F.lit(batch_id).cast("bigint").alias("first_batch_id"),
                )
            )
            # No bad record: nothing to append, once the table exists (readers expect it).
            if report.quarantined or not self.quarantine_exists():
                self._timed(
                    report,
                    "quarantine",
                    lambda: delta.append_idempotent(
                        bad.transform(quality.quarantine_raw(started)), job.table("quarantine"), app, batch_id
                    ),
                )
            self._timed(
                report,
                "silver",
                lambda: delta.merge_insert_new(
                    self.spark, silver_rows, job.table("silver_users"), ["user_id"], app, batch_id
                ),
            )
            new_users = self.new_users(batch_id).select("user_id", "country", "gender", "age").persist()
            cached.append(new_users)
            self._timed(report, "new_users", lambda: setattr(report, "new_users", new_users.count()))

            quality_row = self.quality_row(counts.schema, row, batch_id, report)
            # The cheap writes first: one at a time (ServingGate), gold ends the batch.
            lanes: list[list[Step]] = [
                # An empty batch (Spark runs one when a query starts at `latest`) has no day to file
                # its row under, and nothing to report.
                [
                    (
                        "cassandra_quality",
                        lambda: cassandra.write_cassandra(quality_row, job, "quality_metrics"),
                    )
                ]
                if report.records_in
                else [],
                [
                    (
                        "mongo_anomalies",
                        lambda: mongo.write_mongo(
                            bad.transform(quality.quarantine_documents(key, key_version, started)),
                            job,
                            "anomalies",
                        ),
                    )
                ]
                if report.quarantined
                else [],
                [("gold", lambda: self.update_gold(batch_id, started, new_users, report=report))]
                if report.new_users
                else [],
            ]
            self._run(report, lanes)
        finally:
            for df in cached:
                df.unpersist()
        self.give_back_memory(report)
        return self._finish(report, t0)

    def give_back_memory(self, report: BatchReport) -> None:
        """While the serving query is light (the specification's rate) and the driver holds
        more than GIVE_BACK_ABOVE of its maximum heap, after a lake batch: one concurrent G1
        cycle (System.gc() with -XX:+ExplicitGCInvokesConcurrent, scripts/spark-submit.sh),
        at whose end G1 returns the heap it does not need (MaxHeapFreeRatio). G1's periodic
        collection after 30 s without one does the same, but only when no young collection
        came first: at 10 users / 10 s it sometimes never ran, and the driver kept 2.6 GB RSS
        instead of 1.7 (docs/PERFORMANCE.md). Under load the heap is in use: nothing is
        done. Timed as `gc` (~0.3-0.6 s of one core, concurrent with the job).
        """
        if self.gate is None or not self.gate.light:
            return
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        heap = jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
        if heap.getCommitted() > GIVE_BACK_ABOVE * heap.getMax():
            self._timed(report, "gc", jvm.java.lang.System.gc)

    def quality_row(self, schema: StructType, counts: Row, batch_id: int, report: BatchReport) -> DataFrame:
        """The batch's quality_metrics row, from the counts already computed (no second pass)."""
        values = counts.asDict()
        day, batch_time = values.pop("day"), values.pop("batch_time")  # a naive local time, both ways
        people = values.pop("valid_people")
        # Valid people of the batch that silver had before it (re-sent, fetched again, or erased).
        values["duplicates_across"] = people - report.new_users
        fields = [f for f in schema.fields if f.name in values]
        out = StructType(
            [
                StructField("day", DateType()),
                StructField("batch_time", TimestampType()),
                StructField("batch_id", LongType()),
                *fields,
                StructField("duplicates_across", LongType()),
            ]
        )
        return self.spark.createDataFrame(
            [(day, batch_time, batch_id, *(values[f.name] for f in fields), values["duplicates_across"])], out
        )

    def quarantine_exists(self) -> bool:
        if not self._quarantine_exists:
            self._quarantine_exists = (
                delta.read_delta_if_exists(self.spark, self.job.table("quarantine")) is not None
            )
        return self._quarantine_exists

    def new_users(self, batch_id: int) -> DataFrame:
        """The users that this batch inserted into silver (deterministic after any crash)."""
        silver = delta.read_delta(self.spark, self.job.table("silver_users"))
        return silver.where((F.col("first_app_id") == self.app_id) & (F.col("first_batch_id") == batch_id))

    def update_gold(
        self,
        batch_id: int,
        started: dt.datetime,
        new_users: DataFrame,
        *,
        full: bool | None = None,
        report: BatchReport | None = None,
    ) -> None:
        """Gold after this batch, computed once, replaced exactly once under (app_id, batch_id)
        (one Delta commit for every statistic), and the same rows projected to Cassandra.

        Incremental: the previous gold (kept from the last batch; re-read only when another
        writer, e.g. an erasure, committed since) plus the aggregates of the users this batch
        added to silver. A rerun of a batch whose overwrite already committed is skipped by
        Delta, and its Cassandra rows are the same absolute values. The first batch, and every
        GOLD_FULL_RECOMPUTE_EVERY-th, recomputes from all of silver instead (the same figures;
        it would also heal any drift).
        """
        every = self.job.gold_full_recompute_every
        if full is None:
            full = every > 0 and batch_id % every == 0

        @contextlib.contextmanager
        def timer(part: str) -> Iterator[None]:
            """gold_compute, gold_delta, gold_cassandra (summed over its tables): gold's parts."""
            start = time.monotonic()
            try:
                yield
            finally:
                if report is not None:
                    report.add_ms(part, time.monotonic() - start)

        def project(gold: DataFrame) -> None:
            """The Cassandra statistics tables, each after stepping aside (ServingGate)."""

            def lane(write: Callable[[], None]) -> Callable[[], None]:
                def run() -> None:
                    self.step_aside(report)
                    with timer("gold_cassandra"):
                        write()

                return run

            lanes = [lane(write) for write in gold_projections(gold, self.job)]
            run_lanes(lanes, self.concurrency(len(lanes)), self.use_pool)

        cache, path = self._gold, self.job.table(GOLD_TABLE)
        previous = None if full else cache.get()
        # A rerun of a batch whose overwrite committed (a retry of this lane, or the batch run
        # again after a crash): the table already holds this batch's gold, and adding the
        # increment to it would count the batch twice. Project exactly what was committed.
        # Delta's log is asked only when the table was read afresh (a version this process
        # wrote for an earlier batch cannot hold this one).
        committed = None
        if previous is not None and not cache.reloaded and cache.tag == batch_id:
            committed = previous
        elif (previous is None or cache.reloaded) and delta.txn_committed(
            self.spark, path, self.app_id, batch_id
        ):
            committed = delta.read_delta(self.spark, path)
        if committed is not None:
            log.info("gold: batch %d committed already, projecting it again", batch_id)
            project(committed)
            return
        stats = aggregates.gold_stats(started)
        if previous is None:  # silver is only read when it is needed
            silver = delta.read_delta(self.spark, self.job.table("silver_users"))
            computed = silver.select("country", "gender", "age").transform(stats)
        else:
            computed = aggregates.add_increment(
                previous, new_users.transform(stats), aggregates.GOLD_KEY, started
            )
        self.step_aside(report)
        with timer("gold_compute"):
            rows = computed.collect()  # a few dozen rows: the one computation of gold
            gold = self.spark.createDataFrame(rows, computed.schema)
        self.step_aside(report)
        with timer("gold_delta"):
            delta.overwrite_idempotent(gold, path, self.app_id, batch_id)
        cache.put(rows, computed.schema, tag=batch_id)
        project(gold)
