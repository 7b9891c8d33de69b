"""The Delta half of `python -m analytics`, run under scripts/spark-submit.sh: the Delta
analyses in one Spark, their outcomes written as JSON for the parent (analytics/cli.py).

    scripts/spark-submit.sh analytics/spark_job.py --delta-json FILE [the options of analytics.cli]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from analytics.catalogue import selected
from analytics.cli import parse_args
from analytics.model import Sources, lake_tables
from analytics.run import outcomes_to_json, run_analyses
from common import job_settings

log = logging.getLogger(__name__)


def warm_up(spark: SparkSession, tables: Mapping[str, str]) -> float:
    """Read one row of each lake table, so a fresh JVM's first Delta and Parquet reads (class
    loading, JIT, the tables' logs: 20-30 s on this machine) are not charged to the first
    analysis. Returns the seconds it took."""
    started = time.monotonic()
    for path in tables.values():
        if DeltaTable.isDeltaTable(spark, path):
            spark.read.format("delta").load(path).limit(1).collect()
    return time.monotonic() - started


def delta_main(args: argparse.Namespace) -> int:
    """Entry under spark-submit: the Delta analyses only, results as JSON for the parent."""
    job = job_settings.load()
    spark = SparkSession.builder.appName("insights").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        src = Sources(
            spark=spark,
            tables=lake_tables(job.lake_dir),
            now=args.now,
            days=args.days,
            top=args.top,
            versions_ago=args.versions_ago,
            as_of_hours=args.as_of_hours,
        )
        log.info("Spark warm-up (one row of each lake table): %.1f s", warm_up(spark, src.tables))
        outcomes = run_analyses(selected(args.only, "delta"), src)
    finally:
        spark.stop()
    Path(args.delta_json).write_text(json.dumps(outcomes_to_json(outcomes)))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if not args.delta_json:
        print(
            "spark_job: --delta-json FILE is required (python -m analytics runs the whole report)",
            file=sys.stderr,
        )
        return 2
    return delta_main(args)


if __name__ == "__main__":
    sys.exit(main())
