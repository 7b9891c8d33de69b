"""Retention of the Delta lake: table properties, then VACUUM within them.

    scripts/spark-submit.sh jobs/retention.py      (python -m ops.purge runs it)

Sets delta.deletedFileRetentionDuration and delta.logRetentionDuration on every table of
the lake (DELTA_DELETED_FILE_RETENTION, DELTA_LOG_RETENTION), then VACUUMs each with the
table's own retention: files no current version needs and older than that go, so time
travel reaches back no further than that window (docs/GOVERNANCE.md, section 5). The log
retention is applied by Delta itself when it writes a checkpoint.
"""

from __future__ import annotations

import logging
import sys

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from common import job_settings
from common.job_settings import JobSettings
from common.settings import SettingsError, governance_settings
from jobs.io.session import spark_session

log = logging.getLogger("jobs.retention")


def wanted_properties(job: JobSettings) -> dict[str, str]:
    """The table properties from the settings, validated (a typo must not disable retention)."""
    governance = governance_settings(job.common.env)
    return {
        "delta.deletedFileRetentionDuration": governance.delta_deleted_file_retention,
        "delta.logRetentionDuration": governance.delta_log_retention,
    }


def lake_tables(spark: SparkSession, job: JobSettings) -> list[str]:
    if not job.lake_dir.is_dir():
        return []
    return [
        str(path)
        for path in sorted(job.lake_dir.iterdir())
        if path.is_dir() and DeltaTable.isDeltaTable(spark, str(path))
    ]


def apply(spark: SparkSession, job: JobSettings) -> dict[str, str]:
    """Properties and VACUUM for every table; returns what changed per table."""
    wanted = wanted_properties(job)
    changes = {}
    for path in lake_tables(spark, job):
        detail = DeltaTable.forPath(spark, path).detail().first()
        current = dict(detail.properties or {}) if detail is not None else {}
        missing = {k: v for k, v in wanted.items() if current.get(k) != v}
        if missing:
            assignments = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(missing.items()))
            spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
        DeltaTable.forPath(spark, path).vacuum()  # within the table's own retention
        changes[path] = "properties set" if missing else "properties unchanged"
        log.info("%s: %s, vacuumed", path, changes[path])
    return changes


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        job = job_settings.load()
        wanted_properties(job)
    except SettingsError as exc:
        log.error("cannot start: %s", exc)
        return 2
    spark = spark_session(job, "retention")
    spark.sparkContext.setLogLevel("WARN")
    try:
        changes = apply(spark, job)
        print(f"delta retention: {len(changes)} table(s) in {job.lake_dir}")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
