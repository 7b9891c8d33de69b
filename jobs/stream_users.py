"""The streaming job: Kafka `random_user_data` -> Delta medallion -> MongoDB and Cassandra.

Run it with `scripts/spark-submit.sh jobs/stream_users.py` (see README). One query, one
checkpoint; each micro-batch goes through jobs.pipeline.BatchProcessor.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from common.settings import SettingsError
from jobs import lifeline, preflight, sinks
from jobs import settings as job_settings
from jobs.listener import MetricsListener
from jobs.pipeline import BatchProcessor

log = logging.getLogger("jobs.stream_users")
QUERY_NAME = "stream_users"


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
    parser.add_argument("--skip-preflight", action="store_true", help="do not check the servers first")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        job = job_settings.load()
        if not args.skip_preflight:
            preflight.run(job.common)
        app_id = sinks.app_id_for(job.checkpoint(QUERY_NAME))
    except (SettingsError, preflight.PreflightError) as exc:
        log.error("cannot start: %s", exc)
        return 2

    spark = sinks.spark_session(job, QUERY_NAME)
    lifeline.install(spark)  # either side of the driver dying ends the other (jobs/lifeline.py)
    spark.sparkContext.setLogLevel("WARN")
    metrics = MetricsListener(job)  # each batch's progress -> pipeline_metrics and the log
    spark.streams.addListener(metrics)
    processor = BatchProcessor(spark, job, app_id, on_report=metrics.on_report)
    writer = (
        sinks.read_kafka(spark, job, args.starting_offsets)
        .writeStream.queryName(QUERY_NAME)
        .option("checkpointLocation", str(job.checkpoint(QUERY_NAME)))
        .foreachBatch(processor)
    )
    writer = (
        writer.trigger(availableNow=True)
        if args.available_now
        else writer.trigger(processingTime=job.trigger_interval)
    )
    query = writer.start()
    log.info(
        "started %s (app id %s, checkpoint %s, lake %s, trigger %s)",
        QUERY_NAME,
        app_id,
        job.checkpoint(QUERY_NAME),
        job.lake_dir,
        "available-now" if args.available_now else job.trigger_interval,
    )

    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Graceful: the running batch finishes and is committed; nothing is half-done
        # that a restart would not redo idempotently anyway.
        log.info("signal %d: stopping the query", signum)
        stopping.append(signum)
        query.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        query.awaitTermination()
    except Exception as exc:
        if stopping:
            # Stopping the query from a signal interrupts awaitTermination's py4j call.
            log.info("stopped on signal %d", stopping[0])
            return 0
        log.error("query failed: %s", sinks.one_line(exc))
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
