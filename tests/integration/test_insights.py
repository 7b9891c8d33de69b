"""Every insight analysis on a seeded dataset whose answers were computed by hand.

Isolation: the Cassandra seed lives in a keyspace of its own (`<test keyspace>_insights`,
the project's DDL), so the other tests truncating the test namespace cannot touch it, and
these tests never touch theirs. The Delta analyses run on tiny tables written by a real
Spark with Delta: silver_users for the questions about people, bronze, the quarantine and
two versions of gold (gold_stats) for the history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from analytics import cassandra_queries, catalogue, delta_queries, model, spark_job
from analytics.model import Result, Sources
from common.clients import cassandra_session
from common.settings import Settings
from ops.cassandra_setup import ddl_statements

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC
D = dt.date

# silver_users columns the analyses read: (user_id, country, nat, gender, age, date_of_birth,
# city, registered_date, email_domain); age at registration in the comment.
USERS = [
    ("u1", "France", "FR", "female", 30, D(1996, 5, 10), "Paris", D(2016, 3, 1), "gmail.com"),  # 19
    ("u2", "France", "FR", "female", 40, D(1986, 1, 20), "Paris", D(2010, 7, 15), "gmail.com"),  # 24
    ("u3", "France", "FR", "male", 50, D(1976, 1, 1), "Lyon", D(2010, 1, 1), "yahoo.fr"),  # 34: birthday
    ("u4", "France", "FR", "male", 21, D(2005, 6, 6), "Nice", D(2020, 5, 5), "gmail.com"),  # 14
    ("u5", "Germany", "DE", "female", 60, D(1966, 9, 9), "Berlin", D(2016, 9, 9), "web.de"),  # 50
    ("u6", "Germany", "DE", "male", 35, D(1991, 2, 3), "Berlin", D(2016, 2, 2), "gmail.com"),  # 24
    ("u7", "Germany", "DE", "male", 45, D(1981, 12, 31), "Munich", D(2020, 12, 31), "web.de"),  # 39
    ("u8", "Spain", "ES", "female", 25, D(2001, 3, 3), "Madrid", D(2020, 6, 6), "gmail.com"),  # 19
    ("u9", "Spain", "ES", "female", 70, D(1956, 10, 10), "Sevilla", D(2010, 10, 9), "yahoo.fr"),  # 53
    ("u10", "Brazil", "BR", "male", 33, D(1993, 4, 4), "Rio de Janeiro", D(2016, 4, 4), "gmail.com"),  # 23
]
SILVER_SCHEMA = (
    "user_id string, country string, nat string, gender string, age int, date_of_birth date, "
    "city string, registered_date date, email_domain string"
)


def rows(result: Result) -> list[dict[str, Any]]:
    return result.rows


def test_no_analysis_runs_on_mongodb() -> None:
    # FerretDB scans and decodes every document for any aggregation: minutes at a million users.
    assert {a.store for a in catalogue.ANALYSES} == {"cassandra", "delta"}


# --- people: Delta silver_users ----------------------------------------------------------------


@pytest.fixture(scope="module")
def people(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Sources:
    tables = model.lake_tables(tmp_path_factory.mktemp("insights-silver"))
    spark.createDataFrame(USERS, SILVER_SCHEMA).write.format("delta").save(tables["silver_users"])
    return Sources(spark=spark, tables=tables, top=2)


def test_age_by_country(people: Sources) -> None:
    result = delta_queries.age_by_country(people)
    assert result.columns == ("country", *delta_queries.AGE_COLUMNS)
    assert rows(result) == [
        # [21, 30, 40, 50]: quartiles by linear interpolation at (n-1)q
        {"country": "France", "users": 4, "mean_age": 35.25, "p25": 27.75, "median_age": 35.0,
         "p75": 42.5, "min_age": 21, "max_age": 50},
        {"country": "Germany", "users": 3, "mean_age": 46.67, "p25": 40.0, "median_age": 45.0,
         "p75": 52.5, "min_age": 35, "max_age": 60},
        {"country": "Spain", "users": 2, "mean_age": 47.5, "p25": 36.25, "median_age": 47.5,
         "p75": 58.75, "min_age": 25, "max_age": 70},
        {"country": "Brazil", "users": 1, "mean_age": 33.0, "p25": 33.0, "median_age": 33.0,
         "p75": 33.0, "min_age": 33, "max_age": 33},
    ]  # fmt: skip
    assert f"FROM delta.`{people.tables['silver_users']}`" in result.query


def test_age_by_gender(people: Sources) -> None:
    assert rows(delta_queries.age_by_gender(people)) == [
        {"gender": "female", "users": 5, "mean_age": 45.0, "p25": 30.0, "median_age": 40.0,
         "p75": 60.0, "min_age": 25, "max_age": 70},
        {"gender": "male", "users": 5, "mean_age": 36.8, "p25": 33.0, "median_age": 35.0,
         "p75": 45.0, "min_age": 21, "max_age": 50},
    ]  # fmt: skip


def test_gender_by_nationality(people: Sources) -> None:
    assert rows(delta_queries.gender_by_nationality(people)) == [
        {"nat": "ES", "users": 2, "female": 2, "male": 0, "other": 0, "female_pct": 100.0,
         "males_per_100_females": 0.0},
        {"nat": "FR", "users": 4, "female": 2, "male": 2, "other": 0, "female_pct": 50.0,
         "males_per_100_females": 100.0},
        {"nat": "DE", "users": 3, "female": 1, "male": 2, "other": 0, "female_pct": 33.33,
         "males_per_100_females": 200.0},
        {"nat": "BR", "users": 1, "female": 0, "male": 1, "other": 0, "female_pct": 0.0,
         "males_per_100_females": None},
    ]  # fmt: skip


def test_registration_cohorts_count_full_years_at_registration(people: Sources) -> None:
    # 2010: 24, 34, 53; 2016: 19, 50, 24, 23; 2020: 14, 39, 19 (see USERS)
    assert rows(delta_queries.registration_cohorts(people)) == [
        {"registration_year": 2010, "users": 3, "share_pct": 30.0, "mean_age_then": 37.0,
         "median_age_then": 34.0, "youngest_then": 24, "oldest_then": 53, "under_18_then": 0},
        {"registration_year": 2016, "users": 4, "share_pct": 40.0, "mean_age_then": 29.0,
         "median_age_then": 23.5, "youngest_then": 19, "oldest_then": 50, "under_18_then": 0},
        {"registration_year": 2020, "users": 3, "share_pct": 30.0, "mean_age_then": 24.0,
         "median_age_then": 19.0, "youngest_then": 14, "oldest_then": 39, "under_18_then": 1},
    ]  # fmt: skip


def test_email_domains(people: Sources) -> None:
    assert rows(delta_queries.email_domains(people)) == [
        {"email_domain": "gmail.com", "users": 6, "share_pct": 60.0},
        {"email_domain": "web.de", "users": 2, "share_pct": 20.0},
        {"email_domain": "yahoo.fr", "users": 2, "share_pct": 20.0},
    ]


def test_top_cities_of_the_top_countries(people: Sources) -> None:
    assert rows(delta_queries.top_cities(people)) == [
        {"country": "France", "country_users": 4, "city": "Paris", "users": 2, "share_of_country_pct": 50.0},
        {"country": "France", "country_users": 4, "city": "Lyon", "users": 1, "share_of_country_pct": 25.0},
        {"country": "France", "country_users": 4, "city": "Nice", "users": 1, "share_of_country_pct": 25.0},
        {"country": "Germany", "country_users": 3, "city": "Berlin", "users": 2,
         "share_of_country_pct": 66.67},
        {"country": "Germany", "country_users": 3, "city": "Munich", "users": 1,
         "share_of_country_pct": 33.33},
    ]  # fmt: skip


def test_blank_and_missing_groups_are_unknown(spark: SparkSession, tmp_path: Path) -> None:
    tables = model.lake_tables(tmp_path)
    users = [
        ("a", " ", "FR", None, 30, None, "", None, None),
        ("b", None, "", "female", 40, None, None, None, "x.org"),
    ]
    spark.createDataFrame(users, SILVER_SCHEMA).write.format("delta").save(tables["silver_users"])
    src = Sources(spark=spark, tables=tables)
    assert [(r["gender"], r["users"]) for r in rows(delta_queries.age_by_gender(src))] == [
        ("female", 1),
        ("unknown", 1),
    ]
    assert rows(delta_queries.email_domains(src)) == [
        {"email_domain": "unknown", "users": 1, "share_pct": 50.0},
        {"email_domain": "x.org", "users": 1, "share_pct": 50.0},
    ]
    assert [(r["country"], r["city"], r["users"]) for r in rows(delta_queries.top_cities(src))] == [
        ("unknown", "unknown", 2)
    ]
    assert rows(delta_queries.registration_cohorts(src)) == []


# --- Cassandra ----------------------------------------------------------------------------------

NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SEED_TABLES = ("country_stats", "gender_stats", "age_band_stats", "quality_metrics", "latest_users")


@pytest.fixture(scope="module")
def cassandra_src(stack: Settings) -> Iterator[Sources]:
    keyspace = f"{stack.cassandra.keyspace}_insights"
    with cassandra_session(stack.cassandra, stack.cassandra.admin) as session:
        for statement in ddl_statements(keyspace, stack.cassandra.replication_cql):
            session.execute(statement, timeout=120)
        for table in SEED_TABLES:
            session.execute(f"TRUNCATE {keyspace}.{table}", timeout=120)
        _seed_cassandra(session, keyspace)
        yield Sources(cassandra=session, keyspace=keyspace, now=NOW, days=2, min_users=1)


def _seed_cassandra(s: Session, ks: str) -> None:
    stamp = dt.datetime(2026, 1, 10, 11, 0)
    for country, count, sum_age in (
        ("France", 4, 141),
        ("Germany", 3, 140),
        ("Spain", 2, 95),
        ("Brazil", 1, 33),
    ):
        s.execute(
            f"INSERT INTO {ks}.country_stats (country, count_users, sum_age, avg_age, last_update) "
            "VALUES (%s, %s, %s, %s, %s)",
            (country, count, sum_age, sum_age / count, stamp),
        )
    for gender, count, sum_age in (("female", 5, 225), ("male", 5, 184)):
        s.execute(
            f"INSERT INTO {ks}.gender_stats (gender, count_users, sum_age, avg_age, last_update) "
            "VALUES (%s, %s, %s, %s, %s)",
            (gender, count, sum_age, sum_age / count, stamp),
        )
    for band, count in (("65+", 1), ("18-24", 2), ("45-54", 2), ("25-34", 3), ("55-64", 1), ("35-44", 1)):
        s.execute(
            f"INSERT INTO {ks}.age_band_stats (age_band, count_users, last_update) VALUES (%s, %s, %s)",
            (band, count, stamp),
        )
    quality = (
        (dt.date(2026, 1, 8), dt.datetime(2026, 1, 8, 10, 0), 0, 10, 90, {"invalid_email": 90}),  # not read
        (
            dt.date(2026, 1, 9),
            dt.datetime(2026, 1, 9, 23, 10),
            1,
            90,
            10,
            {"invalid_email": 6, "empty_country": 4},
        ),
        (
            dt.date(2026, 1, 9),
            dt.datetime(2026, 1, 9, 23, 40),
            2,
            45,
            5,
            {"invalid_email": 5, "missing_uuid": 0},
        ),
        (dt.date(2026, 1, 10), dt.datetime(2026, 1, 10, 0, 5), 3, 100, 0, {"invalid_email": 0}),
    )
    for day, batch_time, batch_id, valid, quarantined, reasons in quality:
        s.execute(
            f"INSERT INTO {ks}.quality_metrics (day, batch_time, batch_id, valid, quarantined, reasons) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (day, batch_time, batch_id, valid, quarantined, reasons),
        )
    latest = (
        (dt.date(2026, 1, 8), dt.datetime(2026, 1, 8, 9, 0), "old"),  # outside the 2 days read
        (dt.date(2026, 1, 9), dt.datetime(2026, 1, 9, 23, 59, 59), "a"),
        (dt.date(2026, 1, 9), dt.datetime(2026, 1, 9, 23, 0), "b"),
        (dt.date(2026, 1, 10), dt.datetime(2026, 1, 10, 0, 1), "c"),
        (dt.date(2026, 1, 10), dt.datetime(2026, 1, 10, 0, 30), "d"),
        (dt.date(2026, 1, 10), dt.datetime(2026, 1, 10, 11, 59), "e"),
    )
    for day, ts, user_id in latest:
        s.execute(
            f"INSERT INTO {ks}.latest_users (day, ingestion_time, user_id) VALUES (%s, %s, %s)",
            (day, ts, user_id),
        )


def test_country_age_deviation(cassandra_src: Sources) -> None:
    # global average: 409 / 10 = 40.9
    result = cassandra_queries.country_age_deviation(cassandra_src)
    assert rows(result) == [
        {"country": "Brazil", "users": 1, "avg_age": 33.0, "global_avg_age": 40.9, "difference": -7.9},
        {"country": "Spain", "users": 2, "avg_age": 47.5, "global_avg_age": 40.9, "difference": 6.6},
        {"country": "Germany", "users": 3, "avg_age": 46.67, "global_avg_age": 40.9, "difference": 5.77},
        {"country": "France", "users": 4, "avg_age": 35.25, "global_avg_age": 40.9, "difference": -5.65},
    ]
    assert result.note == ""
    assert "ALLOW FILTERING" not in result.query
    assert result.query == f"SELECT country, count_users, sum_age FROM {cassandra_src.keyspace}.country_stats"


def test_country_age_deviation_leaves_small_countries_out(cassandra_src: Sources) -> None:
    # The global average still counts every user; Spain (2) and Brazil (1) are too small to show.
    result = cassandra_queries.country_age_deviation(replace(cassandra_src, min_users=3))
    assert rows(result) == [
        {"country": "Germany", "users": 3, "avg_age": 46.67, "global_avg_age": 40.9, "difference": 5.77},
        {"country": "France", "users": 4, "avg_age": 35.25, "global_avg_age": 40.9, "difference": -5.65},
    ]
    assert result.note == "2 countries with fewer than 3 users left out (too few to compare)"


def test_gender_overview(cassandra_src: Sources) -> None:
    assert rows(cassandra_queries.gender_overview(cassandra_src)) == [
        {"gender": "female", "users": 5, "share_pct": 50.0, "avg_age": 45.0},
        {"gender": "male", "users": 5, "share_pct": 50.0, "avg_age": 36.8},
    ]


def test_age_bands_in_age_order(cassandra_src: Sources) -> None:
    assert rows(cassandra_queries.age_bands(cassandra_src)) == [
        {"age_band": "18-24", "users": 2, "share_pct": 20.0},
        {"age_band": "25-34", "users": 3, "share_pct": 30.0},
        {"age_band": "35-44", "users": 1, "share_pct": 10.0},
        {"age_band": "45-54", "users": 2, "share_pct": 20.0},
        {"age_band": "55-64", "users": 1, "share_pct": 10.0},
        {"age_band": "65+", "users": 1, "share_pct": 10.0},
    ]


def test_quality_by_hour_reads_only_the_requested_day_partitions(cassandra_src: Sources) -> None:
    result = cassandra_queries.quality_by_hour(cassandra_src)
    assert rows(result) == [
        {"hour": "2026-01-09 23:00", "batches": 2, "rows_checked": 150, "quarantined": 15,
         "quarantine_pct": 10.0, "reasons": "invalid_email=11, empty_country=4"},
        {"hour": "2026-01-10 00:00", "batches": 1, "rows_checked": 100, "quarantined": 0,
         "quarantine_pct": 0.0, "reasons": ""},
    ]  # fmt: skip
    assert "WHERE day = ?" in result.query and "2026-01-10, 2026-01-09" in result.query


def test_new_users_by_hour(cassandra_src: Sources) -> None:
    result = cassandra_queries.new_users_by_hour(cassandra_src)
    assert "run once per UTC hour (up to now) of each day partition: 2026-01-10, 2026-01-09" in result.query
    assert rows(result) == [
        {"hour": "2026-01-09 23:00", "new_users": 2},
        {"hour": "2026-01-10 00:00", "new_users": 2},
        {"hour": "2026-01-10 11:00", "new_users": 1},
    ]


def test_every_cassandra_query_respects_the_data_model() -> None:
    for cql in (
        cassandra_queries.COUNTRY_DEVIATION_CQL,
        cassandra_queries.GENDER_CQL,
        cassandra_queries.AGE_BAND_CQL,
        cassandra_queries.QUALITY_CQL,
        cassandra_queries.NEW_USERS_CQL,
    ):
        assert "ALLOW FILTERING" not in cql
        # Either a whole small aggregate table keyed by its group, or one day partition (or a
        # clustering range of one).
        assert "WHERE" not in cql or cql.endswith(
            ("WHERE day = ?", "WHERE day = ? AND ingestion_time >= ? AND ingestion_time < ?")
        )
    # The users of a day are counted by the server, never shipped.
    assert cassandra_queries.NEW_USERS_CQL.startswith("SELECT count(*) AS users FROM {keyspace}.latest_users")


# --- Delta (Spark SQL) ----------------------------------------------------------------------------


BRONZE = [  # (Kafka timestamp, value)
    (dt.datetime(2026, 1, 8, 23, 59, tzinfo=UTC), b'{"results":[{}]}'),  # before the 2 days read
    (dt.datetime(2026, 1, 9, 10, 5, tzinfo=UTC), b'{"results":[{},{}]}'),
    (dt.datetime(2026, 1, 9, 10, 50, tzinfo=UTC), b'{"results":[{}]}'),
    (dt.datetime(2026, 1, 9, 11, 0, tzinfo=UTC), b"not json"),
    (dt.datetime(2026, 1, 9, 11, 30, tzinfo=UTC), b'{"results":[{},{},{}]}'),
]
QUARANTINE = [  # (Kafka timestamp, reasons)
    (dt.datetime(2026, 1, 8, 23, 59, tzinfo=UTC), ["invalid_email"]),  # before the 2 days read
    (dt.datetime(2026, 1, 9, 10, 5, tzinfo=UTC), ["invalid_email"]),
    (dt.datetime(2026, 1, 9, 10, 50, tzinfo=UTC), ["invalid_email", "empty_country"]),
    (dt.datetime(2026, 1, 9, 11, 0, tzinfo=UTC), ["unparseable_json"]),
]
GOLD_SCHEMA = T.StructType(
    [
        T.StructField("dimension", T.StringType()),
        T.StructField("group_key", T.StringType()),
        T.StructField("count_users", T.LongType()),
        T.StructField("avg_age", T.DoubleType()),
    ]
)


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("insights-lake")
    tables = model.lake_tables(root)
    spark.createDataFrame(BRONZE, "timestamp timestamp, value binary").write.format("delta").save(
        tables["bronze"]
    )
    spark.createDataFrame(QUARANTINE, "kafka_timestamp timestamp, reasons array<string>").write.format(
        "delta"
    ).save(tables["quarantine"])
    gold = tables["gold_stats"]
    # Gold holds every dimension: the time travel compares the countries only.
    spark.createDataFrame(
        [("country", "France", 2, 30.0), ("country", "Spain", 1, 40.0), ("gender", "female", 3, 33.3)],
        GOLD_SCHEMA,
    ).write.format("delta").save(gold)
    spark.createDataFrame(
        [
            ("country", "France", 3, 35.0),
            ("country", "Spain", 1, 40.0),
            ("country", "Brazil", 2, 20.0),
            ("gender", "female", 6, 31.0),
        ],
        GOLD_SCHEMA,
    ).write.format("delta").mode("overwrite").save(gold)
    return tables


def test_bronze_volume_by_hour_of_the_days_read(spark: SparkSession, lake: dict[str, str]) -> None:
    result = delta_queries.bronze_volume_by_hour(Sources(spark=spark, tables=lake, now=NOW, days=2))
    assert "WHERE timestamp >= TIMESTAMP '2026-01-09 00:00:00'" in result.query
    assert rows(result) == [
        {
            "hour": "2026-01-09 10:00",
            "records": 2,
            "users": 3,
            "bytes": len(BRONZE[1][1]) + len(BRONZE[2][1]),
        },
        {
            "hour": "2026-01-09 11:00",
            "records": 2,
            "users": 3,
            "bytes": len(BRONZE[3][1]) + len(BRONZE[4][1]),
        },
    ]


H10, H11 = "2026-01-09 10:00", "2026-01-09 11:00"


def test_quarantine_rate_by_reason_of_the_days_read(spark: SparkSession, lake: dict[str, str]) -> None:
    result = delta_queries.quarantine_rate_by_reason(Sources(spark=spark, tables=lake, now=NOW, days=2))
    assert rows(result) == [
        {"hour": H10, "reason": "invalid_email", "rows": 2, "users_in": 3, "pct_of_users": 66.67},
        {"hour": H10, "reason": "empty_country", "rows": 1, "users_in": 3, "pct_of_users": 33.33},
        {"hour": H11, "reason": "unparseable_json", "rows": 1, "users_in": 3, "pct_of_users": 33.33},
    ]


VERSION_0_VS_NOW = [
    {"country": "Brazil", "users_then": 0, "users_now": 2, "new_users": 2, "avg_age_then": None,
     "avg_age_now": 20.0},
    {"country": "France", "users_then": 2, "users_now": 3, "new_users": 1, "avg_age_then": 30.0,
     "avg_age_now": 35.0},
    {"country": "Spain", "users_then": 1, "users_now": 1, "new_users": 0, "avg_age_then": 40.0,
     "avg_age_now": 40.0},
]  # fmt: skip


def test_time_travel_versions_ago_returns_the_earlier_version(
    spark: SparkSession, lake: dict[str, str]
) -> None:
    result = delta_queries.country_stats_versions_ago(Sources(spark=spark, tables=lake, versions_ago=1))
    assert rows(result) == VERSION_0_VS_NOW
    assert "VERSION AS OF 0" in result.query
    assert result.note == "latest version 1, compared with version 0"


def test_time_travel_timestamp_as_of_the_first_commit(spark: SparkSession, lake: dict[str, str]) -> None:
    _, history = delta_queries.gold_history(Sources(spark=spark, tables=lake))
    assert [v for v, _ in history] == [0, 1]
    first_commit = history[0][1]
    # "24 hours before now" lands exactly on version 0's commit.
    src = Sources(spark=spark, tables=lake, now=first_commit + dt.timedelta(hours=24), as_of_hours=24)
    result = delta_queries.country_stats_as_of(src)
    assert rows(result) == VERSION_0_VS_NOW
    assert f"TIMESTAMP AS OF '{first_commit:%Y-%m-%d %H:%M:%S.%f}'"[:-4] in result.query


def test_time_travel_before_the_first_commit_falls_back_to_it(
    spark: SparkSession, lake: dict[str, str]
) -> None:
    _, history = delta_queries.gold_history(Sources(spark=spark, tables=lake))
    src = Sources(spark=spark, tables=lake, now=history[0][1] + dt.timedelta(hours=23), as_of_hours=24)
    result = delta_queries.country_stats_as_of(src)
    assert rows(result) == VERSION_0_VS_NOW
    assert "VERSION AS OF 0" in result.query
    assert "before the table's first commit" in result.note


def test_warm_up_reads_the_tables_there_are(
    spark: SparkSession, lake: dict[str, str], tmp_path: Path
) -> None:
    # silver_users is not in this lake, nor the extra path: skipped, not an error.
    assert spark_job.warm_up(spark, {**lake, "nothing": str(tmp_path / "nothing")}) >= 0.0
