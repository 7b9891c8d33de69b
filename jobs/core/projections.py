"""Enriched users -> the exact row shapes of the serving stores (Cassandra, Mongo).

Kept apart from the writers (jobs/io/) so the shapes are tested without servers. The
Cassandra columns come from contract/tables.py (checked against ddl/cassandra/ by a test); the
Mongo fields are kept in step with ddl/mongo/collections.json.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract import tables
from jobs.core.transform import ENRICHED_COLUMNS, utc_date

logger = logging.getLogger(__name__)

# The Cassandra rows, column for column as contract/tables.py declares them (and the DDL creates).
RANDOM_USER_COLUMNS: tuple[str, ...] = tables.columns("random_user_table")
LATEST_USERS_COLUMNS: tuple[str, ...] = tables.columns("latest_users")

# The Mongo document: _id = user_id, then the enriched fields (no raw contact data) in their
# order, less the Kafka/producer bookkeeping and the date of birth.
_NOT_IN_MONGO = frozenset(
    {"user_id", "date_of_birth", "producer_id", "seq", "topic", "partition", "offset", "user_index"}
)
MONGO_FIELDS: tuple[str, ...] = tuple(c for c in ENRICHED_COLUMNS if c not in _NOT_IN_MONGO)


def _as_utc_midnight(day: Column) -> Column:
    # BSON has no date-only type; a UTC midnight timestamp keeps the day in every client.
    return F.timestamp_seconds(F.unix_date(day).cast("bigint") * 86_400)


def to_random_user_rows(enriched: DataFrame) -> DataFrame:
    """Enriched users -> random_user_table rows (one per user and fetch)."""
    return enriched.select(*RANDOM_USER_COLUMNS)


def to_latest_users_rows(enriched: DataFrame) -> DataFrame:
    """Enriched users -> latest_users rows; day = the UTC date of ingestion_time."""
    return enriched.select(
        utc_date(F.col("ingestion_time")).alias("day"),
        *LATEST_USERS_COLUMNS[1:],
    )


def to_mongo_documents(enriched: DataFrame) -> DataFrame:
    """Enriched users -> randomUserCollection documents (_id = user_id, dates as UTC midnight).

    Pass one row per user (aggregates.latest_per_user) so a replace-upsert is deterministic.
    """
    return enriched.select(
        F.col("user_id").alias("_id"),
        *[_as_utc_midnight(F.col(c)).alias(c) if c == "registered_date" else F.col(c) for c in MONGO_FIELDS],
    )


def to_statistics_rows(gold: DataFrame, dimension: str, table: str) -> DataFrame:
    """Gold rows (aggregates.gold_stats) -> the rows of one statistics table (e.g. country_stats):
    that dimension's groups, its key column named as the table names it, the table's columns."""
    return gold.where(F.col("dimension") == dimension).select(
        *[F.col("group_key").alias(c) if c == dimension else F.col(c) for c in tables.columns(table)]
    )
