"""Gold aggregates and the serving-store row shapes, checked against the DDL and the fixtures."""

from __future__ import annotations

import collections
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import aggregates, projections, quality, transform
from tests.expectations import age_band as expected_band
from tests.unit.bronze_rows import KEY, PROCESSED, PROCESSED_UTC, fixture_bronze
from tests.unit.frames import assert_rows, assert_same_frame, assertSchemaEqual
from tests.unit.test_transform import expected_enriched

ROOT = Path(__file__).resolve().parents[2]
LAST_UPDATE = dt.datetime(2026, 11, 28, 0, 1, tzinfo=dt.UTC)
LAST_UPDATE_UTC = dt.datetime(2026, 11, 28, 0, 1)
CQL_TO_SPARK = {
    "text": "string",
    "timestamp": "timestamp",
    "int": "int",
    "bigint": "bigint",
    "double": "double",
}
CQL_TO_SPARK["date"] = "date"


def cassandra_columns(table: str) -> list[tuple[str, str]]:
    """(column, Spark type) of a table, read from the DDL file itself."""
    ddl = (ROOT / "ddl" / "cassandra" / "002_tables.cql").read_text()
    match = re.search(rf"CREATE TABLE IF NOT EXISTS \{{keyspace\}}\.{table} \((.*?)\n\)", ddl, re.S)
    assert match, table
    columns = []
    for line in match.group(1).strip().splitlines():
        words = line.strip().rstrip(",").split()
        if words and words[0] != "PRIMARY" and not words[0].startswith("--"):
            columns.append((words[0], CQL_TO_SPARK.get(words[1], words[1])))
    return columns


def _schema(df: DataFrame) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in df.schema.fields]


def _rows(df: DataFrame, *order: str) -> list[dict[str, Any]]:
    return [r.asDict(recursive=True) for r in df.orderBy(*order).collect()]


@pytest.fixture(scope="module")
def fixture_data(spark: SparkSession, fixtures_dir: Path) -> tuple[DataFrame, list[dict[str, Any]]]:
    """Enriched fixture users (all valid) and the expected enriched rows built from the JSON."""
    bronze, messages = fixture_bronze(spark, fixtures_dir)
    checked = quality.with_reasons(transform.users_from_bronze(bronze))
    enriched = quality.valid(checked).transform(transform.enrich_users(KEY, 1, PROCESSED)).cache()
    expected = [
        expected_enriched(u, m, offset, index)
        for offset, m in enumerate(messages)
        for index, u in enumerate(m["results"])
    ]
    return enriched, expected


def test_gold_aggregates_of_the_fixtures(fixture_data: tuple[DataFrame, list[dict[str, Any]]]) -> None:
    enriched, users = fixture_data
    silver = aggregates.latest_per_user(enriched)

    by_country: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    by_gender: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for u in users:
        by_country[u["country"]].append(u)
        by_gender[u["gender"]].append(u)
    expected_country = [
        {
            "country": c,
            "count_users": len(g),
            "sum_age": sum(u["age"] for u in g),
            "avg_age": sum(u["age"] for u in g) / len(g),
            "male_count": sum(u["gender"] == "male" for u in g),
            "female_count": sum(u["gender"] == "female" for u in g),
            "last_update": LAST_UPDATE_UTC,
        }
        for c, g in sorted(by_country.items())
    ]
    expected_gender = [
        {
            "gender": k,
            "count_users": len(g),
            "sum_age": sum(u["age"] for u in g),
            "avg_age": sum(u["age"] for u in g) / len(g),
            "last_update": LAST_UPDATE_UTC,
        }
        for k, g in sorted(by_gender.items())
    ]

    bands = collections.Counter(expected_band(u["age"]) for u in users)
    expected_bands = [
        {"age_band": b, "count_users": n, "last_update": LAST_UPDATE_UTC} for b, n in sorted(bands.items())
    ]

    country = silver.transform(aggregates.country_stats(LAST_UPDATE))
    gender = silver.transform(aggregates.gender_stats(LAST_UPDATE))
    age_band = silver.transform(aggregates.age_band_stats(LAST_UPDATE))
    assert _schema(country) == cassandra_columns("country_stats")
    assert _schema(gender) == cassandra_columns("gender_stats")
    assert _schema(age_band) == cassandra_columns("age_band_stats")
    assert_rows(country, expected_country)
    assert_rows(gender, expected_gender)
    assert_rows(age_band, expected_bands)
    assert len(expected_country) == 21  # every nationality's country is there


def test_age_band_edges_and_unknown_keys(spark: SparkSession) -> None:
    ages = [0, 17, 18, 24, 25, 34, 35, 44, 45, 54, 55, 64, 65, 120]
    silver = spark.createDataFrame(
        [("Norway", "female", a) for a in ages] + [("  ", None, 30), (None, "male", None)],
        "country string, gender string, age int",
    )
    assert_rows(
        silver.transform(aggregates.age_band_stats(LAST_UPDATE)),
        [
            {"age_band": b, "count_users": n, "last_update": LAST_UPDATE_UTC}
            for b, n in [
                ("0-17", 2),
                ("18-24", 2),
                ("25-34", 3),
                ("35-44", 2),
                ("45-54", 2),
                ("55-64", 2),
                ("65+", 2),
                ("unknown", 1),
            ]
        ],
    )
    assert_rows(
        silver.transform(aggregates.gender_stats(LAST_UPDATE)),
        [
            {
                "gender": "female",
                "count_users": 14,
                "sum_age": sum(ages),
                "avg_age": sum(ages) / 14,
                "last_update": LAST_UPDATE_UTC,
            },
            {
                "gender": "male",
                "count_users": 1,
                "sum_age": None,
                "avg_age": None,
                "last_update": LAST_UPDATE_UTC,
            },
            {
                "gender": "unknown",
                "count_users": 1,
                "sum_age": 30,
                "avg_age": 30.0,
                "last_update": LAST_UPDATE_UTC,
            },
        ],
    )
    assert_rows(silver.transform(aggregates.country_stats(LAST_UPDATE)), [
        {"country": "Norway", "count_users": 14, "sum_age": sum(ages), "avg_age": sum(ages) / 14,
         "male_count": 0, "female_count": 14, "last_update": LAST_UPDATE_UTC},
        {"country": "unknown", "count_users": 2, "sum_age": 30, "avg_age": 15.0,
         "male_count": 1, "female_count": 0, "last_update": LAST_UPDATE_UTC},
    ])  # fmt: skip


def test_latest_per_user_is_deterministic(spark: SparkSession) -> None:
    t1, t2 = dt.datetime(2026, 11, 27, 10), dt.datetime(2026, 11, 27, 11)
    rows = [
        ("u1", t1, "b-a", 5, 0, "old"),
        ("u1", t2, "b-a", 6, 0, "newest"),
        ("u2", t1, "b-a", 7, 0, "lower batch"),
        ("u2", t1, "b-b", 3, 0, "higher batch"),
        ("u3", t1, "b-a", 8, 0, "only"),
    ]
    schema = (
        "user_id string, ingestion_time timestamp, batch_id string, offset long, user_index int, note string"
    )
    df = spark.createDataFrame(rows, schema)
    assert_rows(
        aggregates.latest_per_user(df).select("user_id", "note"),
        [
            {"user_id": "u1", "note": "newest"},
            {"user_id": "u2", "note": "higher batch"},
            {"user_id": "u3", "note": "only"},
        ],
    )


def test_random_user_rows_match_the_table(fixture_data: tuple[DataFrame, list[dict[str, Any]]]) -> None:
    enriched, users = fixture_data
    rows = projections.to_random_user_rows(enriched)
    columns = cassandra_columns("random_user_table")
    assert _schema(rows) == columns
    assert_rows(rows, [{c: u[c] for c, _ in columns} for u in users])


def test_latest_users_rows_use_the_utc_day(spark: SparkSession, fixture_data: tuple[DataFrame, Any]) -> None:
    enriched, users = fixture_data
    late = enriched.withColumn("ingestion_time", F.expr("ingestion_time + INTERVAL 3 HOURS"))
    rows = projections.to_latest_users_rows(late)
    assert _schema(rows) == cassandra_columns("latest_users")
    expected = [
        {
            "day": dt.date(2026, 11, 28),
            "ingestion_time": u["ingestion_time"] + dt.timedelta(hours=3),
            "user_id": u["user_id"],
            "full_name": u["full_name"],
            "gender": u["gender"],
            "age": u["age"],
            "country": u["country"],
            "city": u["city"],
            "nat": u["nat"],
        }
        for u in users
    ]
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")  # still 27 Nov there
    try:
        assert_rows(rows, expected)  # evaluated in that zone
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous or "UTC")


def test_mongo_documents(fixture_data: tuple[DataFrame, list[dict[str, Any]]]) -> None:
    enriched, users = fixture_data
    docs = _rows(projections.to_mongo_documents(enriched), "_id")
    fields = [
        "ingestion_time", "batch_id", "title", "first_name", "last_name", "full_name", "gender", "age",
        "birth_year", "country", "nat", "city", "state", "postcode", "registered_date", "email_domain",
        "email_pseudo", "phone_pseudo", "cell_pseudo", "processed_time", "source",
    ]  # fmt: skip
    expected = []
    for u in sorted(users, key=lambda d: d["user_id"]):
        doc = {"_id": u["user_id"], **{f: u[f] for f in fields}}
        doc["registered_date"] = dt.datetime.combine(u["registered_date"], dt.time())
        expected.append(doc)
    assert docs == expected
    assert docs[0]["processed_time"] == PROCESSED_UTC


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        (aggregates.country_stats, "country"),
        (aggregates.gender_stats, "gender"),
        (aggregates.age_band_stats, "age_band"),
        (aggregates.gold_stats, aggregates.GOLD_KEY),
    ],
)
def test_gold_plus_a_batch_equals_gold_recomputed_from_all_of_silver(
    fixture_data: tuple[DataFrame, list[dict[str, Any]]], factory: Any, key: str | tuple[str, ...]
) -> None:
    enriched, _users = fixture_data
    silver = aggregates.latest_per_user(enriched).select("user_id", "country", "gender", "age")
    # Two earlier batches, then this one: some keys only in one part, some in all (and a null age).
    extra = silver.limit(1).select(
        F.lit("someone-new").alias("user_id"),
        F.lit("Atlantis").alias("country"),
        "gender",
        F.lit(None).cast("int").alias("age"),
    )
    everyone = silver.unionByName(extra)
    first, second = everyone.where(F.col("country") < "I"), everyone.where(F.col("country") >= "I")
    earlier = LAST_UPDATE - dt.timedelta(hours=1)
    previous = first.transform(factory(earlier))
    added = aggregates.add_increment(previous, second.transform(factory(LAST_UPDATE)), key, LAST_UPDATE)
    recomputed = everyone.transform(factory(LAST_UPDATE))
    assertSchemaEqual(added.schema, recomputed.schema)
    assert_same_frame(added, recomputed)
    assert added.count() > 1


def test_gold_holds_every_dimension_and_projects_each_to_its_table(
    fixture_data: tuple[DataFrame, list[dict[str, Any]]],
) -> None:
    """One gold table (one Delta commit a batch): each statistics table is exactly its
    dimension's own aggregates, in the table's columns, and nothing else is in gold."""
    enriched, _users = fixture_data
    silver = aggregates.latest_per_user(enriched).select("country", "gender", "age")
    gold = silver.transform(aggregates.gold_stats(LAST_UPDATE)).cache()
    assert _schema(gold) == [
        ("dimension", "string"),
        ("group_key", "string"),
        ("count_users", "bigint"),
        ("sum_age", "bigint"),
        ("avg_age", "double"),
        ("male_count", "bigint"),
        ("female_count", "bigint"),
        ("last_update", "timestamp"),
    ]
    total = 0
    for dimension, table, factory in aggregates.DIMENSIONS:
        projected = projections.to_statistics_rows(gold, dimension, table)
        assert _schema(projected) == cassandra_columns(table)
        assert_same_frame(projected, silver.transform(factory(LAST_UPDATE)))
        total += projected.count()
    assert gold.count() == total
