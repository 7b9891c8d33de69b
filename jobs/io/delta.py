"""Delta Lake: idempotent appends, overwrites and MERGEs, reads, and each query's app id.

Appends carry `txnAppId`/`txnVersion`; MERGEs run under the session's
`spark.databricks.delta.write.txnAppId`/`txnVersion`: Delta skips a version it already has.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import StructType

from common.settings import SettingsError

log = logging.getLogger(__name__)


def app_id_for(checkpoint: Path) -> str:
    """The Delta transaction app id of a query, created together with its checkpoint.

    A fresh checkpoint restarts batch ids at 0: with an old app id Delta would skip those
    writes as "already done". So a checkpoint without committed offsets gets a new id,
    stored beside it; an existing checkpoint must have its id, or we refuse to guess.
    """
    marker = checkpoint.parent / f"{checkpoint.name}.app_id"
    offsets = checkpoint / "offsets"
    fresh = not offsets.is_dir() or not any(offsets.iterdir())
    if fresh:
        app_id = f"{checkpoint.name}-{uuid.uuid4()}"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(app_id + "\n")
        tmp.replace(marker)
        log.info("new checkpoint %s: Delta app id %s", checkpoint, app_id)
        return app_id
    if not marker.is_file():
        raise SettingsError(
            f"checkpoint {checkpoint} exists but its app id file {marker} is missing: restore it, "
            "or delete the checkpoint to start over"
        )
    return marker.read_text().strip()


def append_idempotent(df: DataFrame, path: str, app_id: str, version: int) -> None:
    """Append; Delta skips it when (app_id, version) was already committed to this table."""
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", str(version))
        .save(path)
    )


def overwrite_idempotent(df: DataFrame, path: str, app_id: str, version: int) -> None:
    """Replace the table's content; skipped when (app_id, version) was already committed."""
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("txnAppId", app_id)
        .option("txnVersion", str(version))
        .save(path)
    )


@contextmanager
def delta_txn(spark: SparkSession, app_id: str, version: int) -> Iterator[None]:
    """Guard the DML inside (MERGE) with Delta's idempotent-write settings."""
    spark.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(version))
    try:
        yield
    finally:
        spark.conf.unset("spark.databricks.delta.write.txnAppId")
        spark.conf.unset("spark.databricks.delta.write.txnVersion")


def ensure_table(spark: SparkSession, df: DataFrame, path: str) -> DeltaTable:
    """The Delta table at path, created empty with df's schema when it does not exist yet."""
    if not DeltaTable.isDeltaTable(spark, path):
        df.limit(0).write.format("delta").mode("append").save(path)
    return DeltaTable.forPath(spark, path)


def _on(keys: Sequence[str]) -> str:
    return " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)


def merge_insert_new(
    spark: SparkSession, df: DataFrame, path: str, keys: Sequence[str], app_id: str, version: int
) -> None:
    """Insert the rows whose key is not in the table yet (first seen wins), exactly once."""
    table = ensure_table(spark, df, path)
    with delta_txn(spark, app_id, version):
        table.alias("t").merge(df.alias("s"), _on(keys)).whenNotMatchedInsertAll().execute()


def merge_upsert(
    spark: SparkSession, df: DataFrame, path: str, keys: Sequence[str], app_id: str, version: int
) -> None:
    """Replace or insert rows by key, exactly once (gold aggregates: absolute values)."""
    table = ensure_table(spark, df, path)
    with delta_txn(spark, app_id, version):
        (
            table.alias("t")
            .merge(df.alias("s"), _on(keys))
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )


def read_delta(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """The table now, or as of a version (the replay pins one, so a resumed replay sees the same rows)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", str(version))
    return reader.load(path)


def read_delta_if_exists(spark: SparkSession, path: str) -> DataFrame | None:
    """The table, or None when nothing was ever written there."""
    return read_delta(spark, path) if DeltaTable.isDeltaTable(spark, path) else None


def delta_version(spark: SparkSession, path: str) -> int:
    """The latest committed version of a Delta table."""
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    assert row is not None
    return int(row[0])


def txn_committed(spark: SparkSession, path: str, app_id: str, version: int) -> bool:
    """True when the Delta table at `path` has a transaction (app_id, >= version) in its log."""
    jvm: Any = spark.sparkContext._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    if not delta_log.tableExists():
        return False
    snapshot = delta_log.update(
        getattr(delta_log, "update$default$1")(),
        getattr(delta_log, "update$default$2")(),
        getattr(delta_log, "update$default$3")(),
    )
    seen = snapshot.transactions().get(app_id)
    return bool(seen.isDefined()) and int(seen.get()) >= version


class CachedDeltaTable:
    """A small Delta table kept by the driver between micro-batches, re-read only when it changed.

    Whether it changed is one `exists` of the next commit file of its log (any Hadoop file
    system), instead of a snapshot update and a read per batch. `collect=True` keeps the rows
    themselves (gold, the erasure ledger: tiny tables), so a batch reads nothing from Delta.
    """

    def __init__(self, spark: SparkSession, path: str, *, collect: bool = True) -> None:
        self.spark = spark
        self.path = path
        self.collect = collect
        self._version: int | None = None
        self._df: DataFrame | None = None
        # True when the last get() read the table (a version this process did not put).
        self.reloaded = False
        self.tag: int | None = None

    def _log(self) -> tuple[Any, Any]:
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        log_dir = jvm.org.apache.hadoop.fs.Path(self.path, "_delta_log")
        jsc: Any = self.spark.sparkContext._jsc
        return jvm, log_dir.getFileSystem(jsc.hadoopConfiguration())

    def latest_version(self) -> int | None:
        """The newest committed version (None: no table), probing upwards from the last one seen."""
        jvm, fs = self._log()
        log_dir = jvm.org.apache.hadoop.fs.Path(self.path, "_delta_log")
        version = self._version
        if version is None:
            if not fs.exists(log_dir):
                return None
            version = -1
            marker = jvm.org.apache.hadoop.fs.Path(log_dir, "_last_checkpoint")
            if fs.exists(marker):
                stream = fs.open(marker)
                try:
                    text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
                finally:
                    stream.close()
                version = int(json.loads(text)["version"])
        while fs.exists(jvm.org.apache.hadoop.fs.Path(log_dir, f"{version + 1:020d}.json")):
            version += 1
        return version if version >= 0 else None

    def get(self) -> DataFrame | None:
        version = self.latest_version()
        self.reloaded = False
        if version is None:
            self._version, self._df = None, None
            return None
        if version != self._version or self._df is None:
            df = read_delta(self.spark, self.path, version)
            self._df = self.spark.createDataFrame(df.collect(), df.schema) if self.collect else df
            self._version, self.tag = version, None
            self.reloaded = True
        return self._df

    def put(self, rows: list[Row], schema: StructType, tag: int | None = None) -> None:
        """After this process committed `rows` as the table's next version: keep them, with
        `tag` (e.g. the batch that wrote them: `tag` says which batch the kept rows are).

        If anything else committed meanwhile (or the write was skipped as already done),
        forget them: the next get() reads the table.
        """
        before = self._version
        version = self.latest_version()
        if before is not None and version == before + 1:
            self._df, self._version, self.tag = self.spark.createDataFrame(rows, schema), version, tag
        else:
            self._df, self.tag = None, None
