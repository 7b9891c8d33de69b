"""One micro-batch, end to end: bronze, quality, silver, gold, then the projections.

Used by the streaming job (foreachBatch) and by the replay from bronze, so both run the
very same transformation and quality code. Exactly-once, step by step (docs/ARCHITECTURE.md):

1. bronze and the Delta quarantine are appended under (app_id, batch_id): a rerun is skipped;
2. silver MERGE inserts only user ids it does not have, stamping (first_app_id,
   first_batch_id); also guarded by (app_id, batch_id);
3. the users this batch added are read back from silver by that stamp, so a rerun after a
   crash finds exactly the same set, whether or not step 2 ran the first time;
4. gold is recomputed from silver (absolute values) and replaced under (app_id, batch_id);
5. the projections upsert by deterministic keys: Mongo `_id` = user id (or topic-partition-
   offset-position for anomalies), Cassandra primary keys; aggregates are the gold rows, read back from gold.
Only when all of this returned does Spark commit the batch in the checkpoint.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import aggregates, erasure, projections, quality, sinks, transform
from jobs.settings import JobSettings

log = logging.getLogger(__name__)

BRONZE_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp", "timestampType", "headers")

# Gold tables: (lake name, Cassandra table, key column, factory).
GOLD = (
    ("gold_country_stats", "country_stats", "country", aggregates.country_stats),
    ("gold_gender_stats", "gender_stats", "gender", aggregates.gender_stats),
    ("gold_age_band_stats", "age_band_stats", "age_band", aggregates.age_band_stats),
)


@dataclass
class BatchReport:
    batch_id: int
    records_in: int = 0
    users_in: int = 0
    valid: int = 0
    quarantined: int = 0
    new_users: int = 0
    durations_ms: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        sinks_ms = " ".join(f"{k}={v}" for k, v in self.durations_ms.items())
        return (
            f"batch {self.batch_id}: records={self.records_in} users={self.users_in} valid={self.valid} "
            f"quarantined={self.quarantined} new={self.new_users} ms[{sinks_ms}]"
        )


def run_lanes(lanes: list[Callable[[], None]], concurrency: int) -> None:
    """Run the lanes, at most `concurrency` at a time; the first error is raised after all ended."""
    if concurrency <= 1 or len(lanes) == 1:
        for run in lanes:
            run()
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sink-lane") as pool:
        futures = [pool.submit(run) for run in lanes]
    for future in futures:
        future.result()


class BatchProcessor:
    """Callable for foreachBatch: process(raw Kafka rows, batch id)."""

    def __init__(
        self,
        spark: SparkSession,
        job: JobSettings,
        app_id: str,
        *,
        retry_base_delay: float = 1.0,
        on_report: Callable[[BatchReport], None] | None = None,
        write_bronze: bool = True,
    ) -> None:
        # write_bronze=False: the replay (jobs/replay_bronze.py) reads bronze, never appends to it.
        self.spark = spark
        self.job = job
        self.app_id = app_id
        self.retry_base_delay = retry_base_delay
        self.on_report = on_report
        self.write_bronze = write_bronze
        self._quarantine_exists = False

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        self.process(raw, batch_id)

    def _timed(self, report: BatchReport, name: str, action: Callable[[], object]) -> None:
        start = time.monotonic()
        sinks.with_retries(
            name, action, base_delay=self.retry_base_delay, stall_timeout=self.job.sink_stall_timeout_s
        )
        report.durations_ms[name] = round((time.monotonic() - start) * 1000)

    def process(self, raw: DataFrame, batch_id: int) -> BatchReport:
        report = BatchReport(batch_id)
        started = dt.datetime.now(dt.UTC)
        key, key_version = self.job.common.pseudonym.key, self.job.common.pseudonym.key_version
        t0 = time.monotonic()
        raw = raw.select(*BRONZE_COLUMNS).persist()
        cached: list[DataFrame] = [raw]
        try:
            report.records_in = raw.count()
            if report.records_in == 0:
                return report
            app, job = self.app_id, self.job
            if self.write_bronze:
                self._timed(
                    report, "bronze", lambda: sinks.append_idempotent(raw, job.table("bronze"), app, batch_id)
                )

            checked = quality.with_reasons(transform.users_from_bronze(raw)).persist()
            cached.append(checked)
            metrics = quality.batch_metrics(checked).first()
            assert metrics is not None
            report.users_in, report.valid, report.quarantined = (
                metrics.users_in,
                metrics.valid,
                metrics.quarantined,
            )
            bad = quality.quarantined(checked)
            enriched = quality.valid(checked).transform(transform.enrich_users(key, key_version, started))
            # People who asked to be erased never come back, whether from Kafka or a replay.
            enriched = erasure.without_erased(enriched, self.erasure_ledger(), key)
            silver_rows = aggregates.latest_per_user(enriched).select(
                "*", F.lit(app).alias("first_app_id"), F.lit(batch_id).cast("bigint").alias("first_batch_id")
            )

            # No bad record: nothing to append, once the table exists (readers expect it).
            if report.quarantined or not self.quarantine_exists():
                self._timed(
                    report,
                    "quarantine",
                    lambda: sinks.append_idempotent(
                        bad.transform(quality.quarantine_raw(started)), job.table("quarantine"), app, batch_id
                    ),
                )
            self._timed(
                report,
                "silver",
                lambda: sinks.merge_insert_new(
                    self.spark, silver_rows, job.table("silver_users"), ["user_id"], app, batch_id
                ),
            )
            new_users = self.new_users(batch_id).persist()
            cached.append(new_users)
            report.new_users = new_users.count()
            batch_users = silver_rows.count()
            batch_time = raw.agg(F.max("timestamp")).first()[0]  # type: ignore[index]
            quality_row = quality.batch_metrics(checked).select(
                transform.utc_date(F.lit(batch_time).cast("timestamp")).alias("day"),
                F.lit(batch_time).cast("timestamp").alias("batch_time"),
                F.lit(batch_id).cast("bigint").alias("batch_id"),
                "*",
                F.lit(batch_users - report.new_users).cast("bigint").alias("duplicates_across"),
            )

            # The projections depend on silver only, not on each other: independent lanes, run
            # concurrently (SINK_CONCURRENCY), the serving tables of the dashboard first. Each
            # write is idempotent; Spark commits the batch only after every lane returned.
            Step = tuple[str, Callable[[], object]]
            new, bad_too = report.new_users > 0, report.quarantined > 0
            serving: list[Step] = [
                (
                    "cassandra_latest",
                    lambda: sinks.write_cassandra(
                        projections.to_latest_users_rows(new_users), job, "latest_users"
                    ),
                ),
                (
                    "cassandra_users",
                    lambda: sinks.write_cassandra(
                        projections.to_random_user_rows(new_users), job, "random_user_table"
                    ),
                ),
            ]
            aggregated: list[Step] = [
                ("gold", lambda: self.update_gold(batch_id, started, new_users)),
                ("cassandra_stats", self.project_gold),
            ]
            documents: list[Step] = [
                (
                    "mongo_users",
                    lambda: sinks.write_mongo(
                        projections.to_mongo_documents(new_users), job, "randomUserCollection"
                    ),
                )
            ]
            anomalies: list[Step] = [
                (
                    "mongo_anomalies",
                    lambda: sinks.write_mongo(
                        bad.transform(quality.quarantine_documents(key, key_version, started)),
                        job,
                        "anomalies",
                    ),
                )
            ]
            quality_step: Step = (
                "cassandra_quality",
                lambda: sinks.write_cassandra(quality_row, job, "quality_metrics"),
            )
            lanes = [
                (serving if new else []) + [quality_step],
                aggregated if new else [],
                (documents if new else []) + (anomalies if bad_too else []),
            ]
            run_lanes([self._lane(report, steps) for steps in lanes if steps], job.sink_concurrency)
        finally:
            for df in cached:
                df.unpersist()
        report.durations_ms["total"] = round((time.monotonic() - t0) * 1000)
        log.info(report.line())
        if self.on_report is not None:
            self.on_report(report)
        return report

    def _lane(self, report: BatchReport, steps: list[tuple[str, Callable[[], object]]]) -> Callable[[], None]:
        def run() -> None:
            for name, action in steps:
                self._timed(report, name, action)

        return run

    def quarantine_exists(self) -> bool:
        if not self._quarantine_exists:
            self._quarantine_exists = (
                sinks.read_delta_if_exists(self.spark, self.job.table("quarantine")) is not None
            )
        return self._quarantine_exists

    def erasure_ledger(self) -> DataFrame | None:
        """The erasure ledger (subject keys only), or None before the first erasure."""
        return sinks.read_delta_if_exists(self.spark, self.job.table(erasure.LEDGER_TABLE))

    def new_users(self, batch_id: int) -> DataFrame:
        """The users that this batch inserted into silver (deterministic after any crash)."""
        silver = sinks.read_delta(self.spark, self.job.table("silver_users"))
        return silver.where((F.col("first_app_id") == self.app_id) & (F.col("first_batch_id") == batch_id))

    def update_gold(
        self, batch_id: int, started: dt.datetime, new_users: DataFrame, *, full: bool | None = None
    ) -> None:
        """Every gold table after this batch, replaced exactly once under (app_id, batch_id).

        Incremental: the previous gold plus the aggregates of the users this batch added to
        silver (tiny tables, so the cost no longer grows with silver). A rerun of a batch
        whose overwrite already committed is skipped by Delta, so nothing is added twice.
        The first batch, and every GOLD_FULL_RECOMPUTE_EVERY-th, recomputes from all of
        silver instead (the same figures; it would also heal any drift).
        """
        every = self.job.gold_full_recompute_every
        if full is None:
            full = every > 0 and batch_id % every == 0
        silver = sinks.read_delta(self.spark, self.job.table("silver_users")).select(
            "country", "gender", "age"
        )
        added = new_users.select("country", "gender", "age").persist()
        try:
            for lake_name, _table, column, factory in GOLD:
                previous = None if full else sinks.read_delta_if_exists(self.spark, self.job.table(lake_name))
                if previous is None:
                    rows = silver.transform(factory(started))
                else:
                    rows = aggregates.add_increment(
                        previous, added.transform(factory(started)), column, started
                    )
                sinks.overwrite_idempotent(rows, self.job.table(lake_name), self.app_id, batch_id)
        finally:
            added.unpersist()

    def project_gold(self) -> None:
        """Write the gold rows to Cassandra as absolute values read from gold (never read-add-write).

        All rows, not only those the batch changed: a few dozen upserts of identical values
        are harmless and cheaper than working out which ones changed.
        """
        for lake_name, table, _column, _factory in GOLD:
            sinks.write_cassandra(sinks.read_delta(self.spark, self.job.table(lake_name)), self.job, table)
