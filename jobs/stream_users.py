"""The streaming job: Kafka `random_user_data` -> the serving stores now, the Delta lake steadily.

Run it with `scripts/spark-submit.sh jobs/stream_users.py` (see README). One Spark
application, two streaming queries on the same topic, each with its own checkpoint
(docs/ARCHITECTURE.md):

- `serving` (short trigger, FAIR pool weighted first): jobs.pipeline.ServingProcessor writes
  each user to Cassandra `latest_users`, `random_user_table` and Mongo within about a second;
- `lake` (longer trigger): jobs.pipeline.LakeProcessor keeps bronze, quarantine, silver,
  gold, the statistics tables and the quality metrics.

A query that fails is restarted in this process with capped backoff while the other goes on;
the process itself ends only on a signal, a stalled sink (exit 3) or a lost driver.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from common import job_settings, stopping
from common.job_settings import JobSettings, QuerySettings
from common.settings import SettingsError
from jobs import lifeline, pipeline, poison_batches, preflight
from jobs.io import delta, kafka, retry
from jobs.io.session import jobs_running, spark_session
from jobs.listener import MetricsListener, caught_up
from jobs.pipeline import LakeProcessor, ServingProcessor

log = logging.getLogger("jobs.stream_users")
APP_NAME = "stream_users"
# A failed query is restarted after 1, 2, 4 ... seconds, at most this many.
RESTART_BACKOFF_MAX_S = 60.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--starting-offsets", help="latest | earliest (fresh checkpoint only); default from env"
    )
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="process what is in the topic now, then stop (backfills, tests)",
    )
    parser.add_argument(
        "--queries",
        default="serving,lake",
        help="which queries to run, comma-separated (default: serving,lake)",
    )
    parser.add_argument("--skip-preflight", action="store_true", help="do not check the servers first")
    return parser.parse_args(argv)


class Job:
    """The two queries of one Spark application, and their restarts."""

    def __init__(
        self,
        spark: SparkSession,
        job: JobSettings,
        metrics: MetricsListener,
        starting_offsets: str | None,
        available_now: bool,
    ) -> None:
        self.spark = spark
        self.job = job
        self.metrics = metrics
        self.starting_offsets = starting_offsets
        self.available_now = available_now
        self.app_ids = {q.name: delta.app_id_for(job.checkpoint(q.name)) for q in job.queries}
        self.failures: dict[str, int] = {}
        self.gate = pipeline.ServingGate(job.lake_yield_max_s) if job.lake_yield_max_s > 0 else None

    def start(self, q: QuerySettings) -> StreamingQuery:
        checkpoint = self.job.checkpoint(q.name)
        processor_type = ServingProcessor if q.name == job_settings.SERVING else LakeProcessor
        processor = processor_type(
            self.spark,
            self.job,
            self.app_ids[q.name],
            on_report=self.metrics.on_report,
            checkpoint=checkpoint,
            gate=self.gate,
        )
        # The query's own thread inherits the pool: Spark's planning jobs run there too.
        processor.use_pool()
        source = kafka.read_kafka(self.spark, self.job, q, self.starting_offsets)
        if q.name == job_settings.SERVING:
            # The row-by-row work is part of the query's plan, built once; the processor
            # stamps each batch's planned time (the same on a rerun).
            pseudonym = self.job.common.pseudonym
            source = pipeline.serving_rows(source, pseudonym.key, pseudonym.key_version)
        writer = (
            source.writeStream.queryName(q.name)
            .option("checkpointLocation", str(checkpoint))
            .foreachBatch(processor)
        )
        writer = (
            writer.trigger(availableNow=True)
            if self.available_now
            else writer.trigger(processingTime=q.trigger_interval)
        )
        query = writer.start()
        log.info(
            "started query %s (app id %s, checkpoint %s, trigger %s, at most %d records a batch)",
            q.name,
            self.app_ids[q.name],
            checkpoint,
            "available-now" if self.available_now else q.trigger_interval,
            q.max_offsets_per_trigger,
        )
        return query

    def held(self, names: list[str]) -> float | None:
        """When both queries run (not available-now), the lake is held back at the start until
        the serving query has caught up, at most LAKE_START_HOLD_MAX_S: the monotonic time the
        hold ends, else None.

        After a crash both queries have a backlog and the JVM is cold: started together on two
        cores they slow each other, and the lake's first batch, each step the first of its kind
        in the new JVM, held the serving query's catch-up back (docs/PERFORMANCE.md, recovery).
        The dashboard's users go first; the lake then starts on a warm JVM and catches up with
        its larger batches. Its checkpoint is untouched: nothing is skipped, only later.
        """
        hold = self.job.lake_start_hold_max_s
        if self.available_now or hold <= 0 or not {job_settings.SERVING, job_settings.LAKE} <= set(names):
            return None
        log.info("the lake query starts once the serving query has caught up, at most %.0fs from now", hold)
        return time.monotonic() + hold

    def run(self, names: list[str], stop: threading.Event) -> int:
        """Run the queries until a signal (or, available-now, until they are done)."""
        wanted = [q for q in self.job.queries if q.name in names]
        hold_until = self.held(names)
        queries = {q.name: self.start(q) for q in wanted if hold_until is None or q.name != job_settings.LAKE}
        started = time.monotonic()
        restart_at: dict[str, float] = {}
        failed = False
        while not stop.is_set():
            stop.wait(0.5)
            if hold_until is not None:
                serving = queries.get(job_settings.SERVING)
                done = serving is not None and caught_up(serving.lastProgress)
                if done or time.monotonic() >= hold_until:
                    log.info(
                        "starting the lake query %.0fs after the serving query: %s",
                        time.monotonic() - started,
                        "the serving query caught up" if done else "the hold ended",
                    )
                    hold_until = None
                    queries[job_settings.LAKE] = self.start(self.job.lake)
            for q in wanted:
                query = queries.get(q.name)
                if query is not None and not query.isActive:
                    error = query.exception()
                    if error is None:  # stopped: by us, or available-now is done
                        if self.available_now:
                            queries.pop(q.name)
                        continue
                    failed = True
                    if self.available_now:
                        log.error("query %s failed: %s", q.name, retry.one_line(error))
                        queries.pop(q.name)
                        continue
                    self.failures[q.name] = self.failures.get(q.name, 0) + 1
                    delay = min(RESTART_BACKOFF_MAX_S, 2.0 ** (self.failures[q.name] - 1))
                    log.error(
                        "query %s failed (%d in a row), restarting it in %.0fs while the other goes on: %s",
                        q.name,
                        self.failures[q.name],
                        delay,
                        retry.one_line(error),
                    )
                    queries.pop(q.name)
                    restart_at[q.name] = time.monotonic() + delay
                elif query is not None and query.lastProgress is not None and self.failures.get(q.name):
                    self.failures[q.name] = 0  # a batch went through since the restart
                if q.name in restart_at and time.monotonic() >= restart_at[q.name]:
                    del restart_at[q.name]
                    queries[q.name] = self.start(q)
            if self.available_now and not queries:
                return 1 if failed else 0
        for name, query in queries.items():
            try:
                query.stop()  # graceful: the running batch finishes and is committed
            except Exception as exc:  # the JVM may be shutting down on the same signal
                log.info("query %s stopped with the JVM: %s", name, retry.one_line(exc))
        return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    names = [n.strip() for n in args.queries.split(",") if n.strip()]
    try:
        job = job_settings.load()
        for line in job_settings.retired(job.common.env):
            log.warning("%s", line)
        unknown = sorted(set(names) - {q.name for q in job.queries})
        if unknown or not names:
            raise SettingsError(f"--queries {args.queries!r}: choose among serving, lake")
        if not args.skip_preflight:
            preflight.run(job.common)
        for q in job.queries:
            delta.app_id_for(job.checkpoint(q.name))  # refuse a checkpoint without its app id
    except (SettingsError, preflight.PreflightError) as exc:
        log.error("cannot start: %s", exc)
        return 2

    spark = spark_session(job, APP_NAME)
    lifeline.install(spark)  # either side of the driver dying ends the other (jobs/lifeline.py)
    spark.sparkContext.setLogLevel("WARN")
    metrics = MetricsListener(job)  # each batch's progress -> pipeline_metrics and the log
    # A sink write failing the same way while every server answers goes to its batch, which
    # is processed in parts after POISON_BATCH_ATTEMPTS failures (jobs/poison_batches.py).
    retry.install_failure_probe(retry.FailureProbe(lambda: poison_batches.servers_up(job.common)))
    # A write that runs no Spark job for SINK_HANG_TIMEOUT_S while every server answers is a
    # hung client call: exit for a restart then, not after SINK_STALL_TIMEOUT_S.
    if job.sink_hang_timeout_s:
        retry.install_hang_check(
            retry.HangCheck(
                job.sink_hang_timeout_s,
                busy=lambda: jobs_running(spark),
                servers_up=lambda: poison_batches.servers_up(job.common),
            )
        )
    spark.streams.addListener(metrics)
    # Graceful: the running batches finish and are committed; nothing is half-done that a
    # restart would not redo idempotently anyway.
    stop = stopping.Stop()
    stopping.install(stop, log)
    try:
        code = Job(spark, job, metrics, args.starting_offsets, args.available_now).run(names, stop)
    except Exception as exc:
        if stop.is_set():  # a signal interrupted a call into the JVM: a normal stop
            log.info("stopping interrupted a call: %s", retry.one_line(exc))
            code = 0
        else:
            log.error("job failed: %s", retry.one_line(exc))
            code = 1
    finally:
        spark.stop()
    if stop.is_set():
        log.info("stopped on signal")
    return code


if __name__ == "__main__":
    sys.exit(main())
