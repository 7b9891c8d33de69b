"""MongoDB through the Spark connector: documents inserted by a deterministic `_id`.

A rerun that meets its own documents inserts only the missing ones (the others are identical).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from bson.int64 import Int64
from pymongo import MongoClient
from pymongo.errors import BulkWriteError
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, TimestampType

from common.job_settings import JobSettings

log = logging.getLogger(__name__)


def write_mongo(df: DataFrame, job: JobSettings, collection: str) -> None:
    """Write each row as one document with a deterministic `_id`, idempotently.

    An unordered bulk insert through the Spark connector. When a document with that `_id`
    is there already (this batch ran before and was cut, or the person was delivered by an
    earlier batch) the connector fails the partition; then the same rows are inserted again
    with an unordered insert per partition that skips duplicate keys one by one, so a rerun
    costs about what the first run cost: never one lookup per id, never a replace-upsert
    (FerretDB/SQLite replace-upserts ~7 documents/s, docs/PERFORMANCE.md).
    """
    try:
        _mongo_insert(df, job, collection)
    except Exception as exc:  # py4j wraps the driver's MongoBulkWriteException
        if not is_duplicate_key(exc):
            raise
        log.info("mongo %s: some documents are there already: inserting the others", collection)
        insert_skipping_duplicates(df, job, collection)


def _mongo_insert(df: DataFrame, job: JobSettings, collection: str) -> None:
    (
        df.write.format("mongodb")
        .mode("append")
        .option("database", job.common.mongo.database)
        .option("collection", collection)
        .option("operationType", "insert")
        .option("ordered", "false")
        .save()
    )


MONGO_INSERT_CHUNK = 1000


def insert_skipping_duplicates(df: DataFrame, job: JobSettings, collection: str) -> None:
    """Unordered `insert_many` per partition (pymongo): duplicate keys (E11000) are skipped,
    every other write error fails the partition. Top-level timestamps go as UTC instants and
    bigints as Int64, as the connector writes them.
    """
    m = job.common.mongo
    uri, database = m.uri(m.writer), m.database
    timestamps = [f.name for f in df.schema.fields if isinstance(f.dataType, TimestampType)]
    longs = [f.name for f in df.schema.fields if isinstance(f.dataType, LongType)]
    # Instants as microseconds since the epoch: a Python worker would read timestamps in its own zone.
    prepared = df.select(*[F.unix_micros(c).alias(c) if c in timestamps else F.col(c) for c in df.columns])

    def insert(rows: Iterable[Row]) -> None:
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

        def document(row: Row) -> dict[str, Any]:
            doc = row.asDict(recursive=True)
            for name in timestamps:
                if doc[name] is not None:
                    doc[name] = epoch + dt.timedelta(microseconds=doc[name])
            for name in longs:
                if doc[name] is not None:
                    doc[name] = Int64(doc[name])
            return doc

        client: MongoClient[dict[str, Any]]
        with MongoClient(uri, serverSelectionTimeoutMS=30_000) as client:
            coll: Any = client[database][collection]
            chunk: list[dict[str, Any]] = []

            def flush() -> None:
                try:
                    coll.insert_many(chunk, ordered=False)
                except BulkWriteError as exc:
                    errors = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
                    if errors or exc.details.get("writeConcernErrors"):
                        raise
                chunk.clear()

            for row in rows:
                chunk.append(document(row))
                if len(chunk) >= MONGO_INSERT_CHUNK:
                    flush()
            if chunk:
                flush()

    prepared.foreachPartition(insert)


def is_duplicate_key(exc: BaseException) -> bool:
    """True when a write failed only because an `_id` exists already (E11000)."""
    text = str(exc)
    return "E11000" in text or "duplicate key" in text.lower()
