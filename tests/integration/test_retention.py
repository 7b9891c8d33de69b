"""Delta retention (jobs/retention.py, run daily by `python -m ops.purge`) on a real lake.

In process, on the shared SparkSession: the same `apply` the command runs, without paying
for another Spark start.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pyspark.sql import SparkSession

from common import job_settings
from common.settings import Settings
from jobs import retention


def _table_properties(table_dir: Path) -> dict[str, str]:
    """The configuration of the table's latest metadata action, read from its Delta log."""
    config: dict[str, str] = {}
    for commit in sorted((table_dir / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "metaData" in action:
                config = action["metaData"].get("configuration", {})
    return config


def test_retention_sets_the_properties_on_every_lake_table_and_vacuums(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    for name in ("bronze", "silver_users", "quarantine", "erasure_ledger"):
        spark.range(3).write.format("delta").save(str(lake / name))
    (lake / "not_a_table").mkdir()
    job = dataclasses.replace(job_settings.from_settings(settings), lake_dir=lake)

    changes = retention.apply(spark, job)

    want = {
        "delta.deletedFileRetentionDuration": "interval 7 days",
        "delta.logRetentionDuration": "interval 30 days",
    }
    tables = ["bronze", "erasure_ledger", "quarantine", "silver_users"]
    assert changes == {str(lake / t): "properties set" for t in tables}
    assert {t: _table_properties(lake / t) for t in tables} == dict.fromkeys(tables, want)
    # A second run finds them in place.
    assert retention.apply(spark, job) == {str(lake / t): "properties unchanged" for t in tables}
    assert sorted(r.id for r in spark.read.format("delta").load(str(lake / "bronze")).collect()) == [0, 1, 2]
