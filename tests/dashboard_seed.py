"""Known Cassandra rows for the dashboard's tests, in a keyspace of their own.

The dashboard reads whole tables (totals, every country), so its tests cannot share the
test keyspace with the job's tests (which truncate it and assert on exact contents). The
keyspace is created by the project's own setup (schema + grants of dashboard_reader) and
dropped afterwards, which also drops its grants.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from cassandra.cluster import Session

from common.clients import cassandra_session as admin_session
from common.settings import CassandraSettings
from ops.cassandra_setup import setup

KEYSPACE = "random_user_dashboard_test"

# country -> (users, sum of ages); Chile and Iceland are below the default k = 5.
COUNTRIES: dict[str, tuple[int, int]] = {
    "Norway": (40, 1520),
    "France": (25, 1125),
    "Brazil": (12, 360),
    "Chile": (4, 200),
    "Iceland": (1, 29),
}
GENDERS: dict[str, tuple[int, int]] = {"female": (41, 1700), "male": (41, 1534)}
AGE_BANDS: dict[str, int] = {"65+": 7, "18-24": 10, "25-34": 20, "35-44": 30, "45-54": 15}
TOTAL_USERS = 82
AVERAGE_AGE = "39.4"  # 3234 / 82 = 39.44
# Seconds before `now` of the latest_users rows: three in the last minute, ten older, two
# three days back (the reader must walk back over empty days to find them).
RECENT_OFFSETS = (1.0, 2.0, 3.0)
OLDER_OFFSETS = tuple(600.0 + 60.0 * i for i in range(10))
OLD_DAYS_OFFSETS = (3 * 86_400.0, 3 * 86_400.0 + 60.0)


def dashboard_cassandra(base: CassandraSettings) -> CassandraSettings:
    return replace(base, keyspace=KEYSPACE)


@contextmanager
def dashboard_keyspace(base: CassandraSettings) -> Iterator[CassandraSettings]:
    """Create the keyspace (schema, grants) fresh; drop it at the end."""
    settings = dashboard_cassandra(base)
    with admin_session(settings, settings.admin) as sess:
        sess.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
    setup(settings)
    try:
        yield settings
    finally:
        with admin_session(settings, settings.admin) as sess:
            sess.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")


@dataclass(frozen=True)
class LatestRow:
    ingestion_time: dt.datetime
    user_id: str
    full_name: str
    gender: str
    age: int
    country: str
    city: str
    nat: str


def latest_rows(now: dt.datetime, prefix: str = "seed") -> list[LatestRow]:
    """The seeded latest_users rows, newest first (millisecond times: what Cassandra keeps)."""
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    offsets = RECENT_OFFSETS + OLDER_OFFSETS + OLD_DAYS_OFFSETS
    countries = list(COUNTRIES)
    rows = []
    for i, offset in enumerate(offsets):
        rows.append(
            LatestRow(
                ingestion_time=now - dt.timedelta(seconds=offset),
                user_id=f"{prefix}-{i:02d}",
                full_name=f"Person {prefix} {i:02d}",
                gender="female" if i % 2 else "male",
                age=20 + i,
                country=countries[i % len(countries)],
                city=f"City {i:02d}",
                nat="NO",
            )
        )
    return rows


def insert_latest(sess: Session, rows: list[LatestRow]) -> None:
    for r in rows:
        sess.execute(
            "INSERT INTO latest_users (day, ingestion_time, user_id, full_name, gender, age, country, "
            "city, nat) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                r.ingestion_time.astimezone(dt.UTC).date(),
                r.ingestion_time,
                r.user_id,
                r.full_name,
                r.gender,
                r.age,
                r.country,
                r.city,
                r.nat,
            ),
        )


# Three batches, oldest first: (valid rows, reasons of the quarantined rows).
QUALITY: tuple[tuple[int, dict[str, int]], ...] = (
    (100, {}),
    (98, {"invalid_email": 2}),
    (95, {"invalid_email": 3, "missing_uuid": 2}),
)
PROCESSED_PER_SECOND = (80.0, 95.5, 120.5)
TRIGGER_MS = (900, 870, 850)


TABLES = (
    "latest_users",
    "country_stats",
    "gender_stats",
    "age_band_stats",
    "quality_metrics",
    "pipeline_metrics",
)


def seed(sess: Session) -> tuple[dt.datetime, list[LatestRow]]:
    """Replace every table's content with the known rows, relative to the time after the
    truncation; returns that time and the latest_users rows, newest first."""
    for table in TABLES:
        sess.execute(f"TRUNCATE {table}")
    now = dt.datetime.now(dt.UTC)
    stamp = now.replace(microsecond=0)
    for country, (users, ages) in COUNTRIES.items():
        sess.execute(
            "INSERT INTO country_stats (country, count_users, sum_age, avg_age, male_count, female_count, "
            "last_update) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (country, users, ages, ages / users, users // 2, users - users // 2, stamp),
        )
    for gender, (users, ages) in GENDERS.items():
        sess.execute(
            "INSERT INTO gender_stats (gender, count_users, sum_age, avg_age, last_update) "
            "VALUES (%s, %s, %s, %s, %s)",
            (gender, users, ages, ages / users, stamp),
        )
    for band, users in AGE_BANDS.items():
        sess.execute(
            "INSERT INTO age_band_stats (age_band, count_users, last_update) VALUES (%s, %s, %s)",
            (band, users, stamp),
        )
    for i, (valid, reasons) in enumerate(QUALITY):
        batch_time = stamp - dt.timedelta(seconds=30 - 10 * i)
        quarantined = sum(reasons.values())
        sess.execute(
            "INSERT INTO quality_metrics (day, batch_time, batch_id, records_in, users_in, valid, "
            "quarantined, reasons, completeness, duplicates_in_batch, duplicates_across) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                batch_time.astimezone(dt.UTC).date(),
                batch_time,
                5 + i,
                1,
                valid + quarantined,
                valid,
                quarantined,
                reasons,
                {"email": 1.0},
                0,
                0,
            ),
        )
        sess.execute(
            "INSERT INTO pipeline_metrics (day, batch_time, query_name, batch_id, input_rows, "
            "input_rows_per_second, processed_rows_per_second, trigger_ms, durations_ms, quarantined, "
            "end_offsets) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                batch_time.astimezone(dt.UTC).date(),
                batch_time,
                "serving",
                5 + i,
                1,
                PROCESSED_PER_SECOND[i],
                PROCESSED_PER_SECOND[i],
                TRIGGER_MS[i],
                {"triggerExecution": TRIGGER_MS[i], "addBatch": TRIGGER_MS[i] - 50},
                quarantined,
                '{"random_user_data_test":{"0":1}}',
            ),
        )
    rows = latest_rows(now)
    insert_latest(sess, rows)
    return now, rows


def as_dicts(rows: list[LatestRow]) -> list[dict[str, Any]]:
    """The rows as the operator's table shows them."""
    return [
        {
            "name": r.full_name,
            "gender": r.gender,
            "age": r.age,
            "country": r.country,
            "city": r.city,
            "nationality": r.nat,
            "ingestion time": r.ingestion_time,
        }
        for r in rows
    ]
