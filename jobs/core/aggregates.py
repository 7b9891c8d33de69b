"""Gold aggregates from silver users: absolute values, never incremented in a sink.

Every statistic lives in one Delta table, gold (`gold_stats`): one row per
(dimension, group_key), e.g. ("country", "France"), so a lake batch commits them all at once
(three tables cost three Delta commits, ~1 s each: the lake's largest fixed cost). Each
Cassandra statistics table is one dimension's projection (projections.to_statistics_rows),
by plain upsert (see ddl/cassandra/002_tables.cql): an absolute value is idempotent, a
counter increment is not. sum_age travels with avg_age so groups combine exactly: gold after
a batch = gold before it + the aggregates of the users the batch added to silver
(`add_increment`), equal to a full recomputation from silver.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DoubleType, LongType

from jobs.core.transform import Transformation, literal_time

logger = logging.getLogger(__name__)

# Upper bounds (inclusive) of each band; the last band is open.
AGE_BANDS: tuple[tuple[str, int | None], ...] = (
    ("0-17", 17),
    ("18-24", 24),
    ("25-34", 34),
    ("35-44", 44),
    ("45-54", 54),
    ("55-64", 64),
    ("65+", None),
)
# A group key Cassandra can store when the source left it empty (a primary key cannot be null).
UNKNOWN = "unknown"


def age_band(age: Column) -> Column:
    """The band label of an age; null for a null or negative age."""
    expr = F.when(age.isNull() | (age < 0), F.lit(None).cast("string"))
    for label, upper in AGE_BANDS:
        expr = expr.when(age <= upper, F.lit(label)) if upper is not None else expr.otherwise(F.lit(label))
    return expr


def _key(column: str) -> Column:
    value = F.trim(F.col(column))
    return F.when(value.isNull() | (value == ""), F.lit(UNKNOWN)).otherwise(value).alias(column)


def latest_per_user(users: DataFrame) -> DataFrame:
    """One row per user_id: the newest fetch (ties broken by batch_id, then offset, user_index).

    Silver and the Mongo documents hold one row per person; the same person can come in
    several fetches of a micro-batch, and which one wins must not depend on row order.
    """
    order = Window.partitionBy("user_id").orderBy(
        F.col("ingestion_time").desc(),
        F.col("batch_id").desc(),
        F.col("offset").desc(),
        F.col("user_index").desc(),
    )
    return users.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") == 1).drop("_rank")


def _sum_age() -> Column:
    return F.sum(F.col("age").cast("bigint")).cast("bigint")


def country_stats(last_update: dt.datetime) -> Transformation:
    """Factory: silver users -> country_stats rows (country, count_users, sum_age, avg_age, ...)."""
    stamp = literal_time(last_update)

    def transform(users: DataFrame) -> DataFrame:
        gender = F.lower(F.col("gender"))
        return (
            users.select(_key("country"), "age", "gender")
            .groupBy("country")
            .agg(
                F.count(F.lit(1)).cast("bigint").alias("count_users"),
                _sum_age().alias("sum_age"),
                F.count(F.when(gender == "male", 1)).cast("bigint").alias("male_count"),
                F.count(F.when(gender == "female", 1)).cast("bigint").alias("female_count"),
            )
            .select(
                "country",
                "count_users",
                "sum_age",
                (F.col("sum_age") / F.col("count_users")).cast("double").alias("avg_age"),
                "male_count",
                "female_count",
                stamp.alias("last_update"),
            )
        )

    return transform


def gender_stats(last_update: dt.datetime) -> Transformation:
    """Factory: silver users -> gender_stats rows (gender, count_users, sum_age, avg_age, last_update)."""
    stamp = literal_time(last_update)

    def transform(users: DataFrame) -> DataFrame:
        return (
            users.select(_key("gender"), "age")
            .groupBy("gender")
            .agg(F.count(F.lit(1)).cast("bigint").alias("count_users"), _sum_age().alias("sum_age"))
            .select(
                "gender",
                "count_users",
                "sum_age",
                (F.col("sum_age") / F.col("count_users")).cast("double").alias("avg_age"),
                stamp.alias("last_update"),
            )
        )

    return transform


def age_band_stats(last_update: dt.datetime) -> Transformation:
    """Factory: silver users -> age_band_stats rows (age_band, count_users, last_update)."""
    stamp = literal_time(last_update)

    def transform(users: DataFrame) -> DataFrame:
        band = F.coalesce(age_band(F.col("age")), F.lit(UNKNOWN))
        return (
            users.select(band.alias("age_band"))
            .groupBy("age_band")
            .agg(F.count(F.lit(1)).cast("bigint").alias("count_users"))
            .select("age_band", "count_users", stamp.alias("last_update"))
        )

    return transform


GoldFactory = Callable[[dt.datetime], Transformation]
# The dimensions of gold: (dimension = the group's column, the Cassandra table it is projected
# to, the factory of its rows).
DIMENSIONS: tuple[tuple[str, str, GoldFactory], ...] = (
    ("country", "country_stats", country_stats),
    ("gender", "gender_stats", gender_stats),
    ("age_band", "age_band_stats", age_band_stats),
)
GOLD_KEY = ("dimension", "group_key")
# Every measure any dimension has; null where a dimension has none (age bands: no ages summed).
GOLD_MEASURES: tuple[tuple[str, DataType], ...] = (
    ("count_users", LongType()),
    ("sum_age", LongType()),
    ("avg_age", DoubleType()),
    ("male_count", LongType()),
    ("female_count", LongType()),
)


def _long(stats: DataFrame, dimension: str) -> DataFrame:
    """One dimension's rows (as its factory shapes them) -> gold rows."""
    return stats.select(
        F.lit(dimension).alias("dimension"),
        F.col(dimension).alias("group_key"),
        *[
            (F.col(name) if name in stats.columns else F.lit(None)).cast(kind).alias(name)
            for name, kind in GOLD_MEASURES
        ],
        "last_update",
    )


def gold_stats(last_update: dt.datetime) -> Transformation:
    """Factory: silver users -> gold: every dimension's rows, one per (dimension, group_key)."""

    def transform(users: DataFrame) -> DataFrame:
        parts = [
            _long(users.transform(factory(last_update)), dimension) for dimension, _, factory in DIMENSIONS
        ]
        return reduce(DataFrame.unionByName, parts)

    return transform


def add_increment(
    previous: DataFrame, increment: DataFrame, key: str | Sequence[str], last_update: dt.datetime
) -> DataFrame:
    """previous + increment, both shaped by the same factory: counts and sums added per key,
    avg_age recomputed from them, every row stamped `last_update` (as a recomputation does).

    Exact: every measure is a count or a sum, and avg_age = sum_age / count_users. A measure
    a group does not have (null on both sides) stays null.
    """
    keys = [key] if isinstance(key, str) else list(key)
    measures = [c for c in previous.columns if c not in {*keys, "avg_age", "last_update"}]
    added = (
        previous.select(*keys, *measures)
        .unionByName(increment.select(*keys, *measures))
        .groupBy(*keys)
        .agg(*(F.sum(c).cast("bigint").alias(c) for c in measures))
    )
    columns: list[Column | str] = []
    for column in previous.columns:
        if column == "avg_age":
            columns.append((F.col("sum_age") / F.col("count_users")).cast("double").alias("avg_age"))
        elif column == "last_update":
            columns.append(literal_time(last_update).alias("last_update"))
        else:
            columns.append(column)
    return added.select(*columns)
