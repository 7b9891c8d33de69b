"""Every Cassandra read of the dashboard, and the pure figures computed from them.

Reads follow the tables' keys (ddl/cassandra/002_tables.cql): day-partitioned tables are
read partition by partition, today first and walking back one UTC day at a time until
enough rows came in; the small aggregate tables are read whole. No ALLOW FILTERING, no
scan of a user table. Functions return plain Python values or pandas DataFrames, so the
page only lays them out and the tests can check them without Streamlit.

Small counts: a viewer never sees a per-country figure below k (see docs/GOVERNANCE.md);
`country_table`, `country_bars` and `country_ages` apply the rule when given `min_count`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from cassandra import (
    AuthenticationFailed,
    InvalidRequest,
    OperationTimedOut,
    ReadFailure,
    ReadTimeout,
    Unauthorized,
    Unavailable,
)
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.policies import ConstantReconnectionPolicy

from common.clients import cassandra_cluster
from common.settings import CassandraSettings

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0
# A node that comes back is found again within this delay (the driver's default backs off to 10 min).
RECONNECT_DELAY_S = 2.0
# latest_users rows live 30 days (their TTL): there is nothing older to walk back to.
LATEST_MAX_DAYS = 31
METRICS_MAX_DAYS = 7
METRICS_MAX_ROWS = 200
LAST_MINUTE = dt.timedelta(seconds=60)

LATEST_COLUMNS = ("name", "gender", "age", "country", "city", "nationality", "ingestion time")


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """The driver returns naive UTC datetimes: make them aware."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# --- Connection -----------------------------------------------------------------------------------


def connect(settings: CassandraSettings) -> tuple[Cluster, Session]:
    """A session as the read-only dashboard account, in the project's keyspace."""
    cluster = cassandra_cluster(
        settings,
        settings.reader,
        connect_timeout=CONNECT_TIMEOUT_S,
        request_timeout=REQUEST_TIMEOUT_S,
        reconnection_policy=ConstantReconnectionPolicy(RECONNECT_DELAY_S, max_attempts=None),
    )
    try:
        return cluster, cluster.connect(settings.keyspace)
    except Exception:
        cluster.shutdown()
        raise


def explain(exc: BaseException, settings: CassandraSettings) -> str:
    """One sentence for the banner: what failed and what to check (never a traceback)."""
    where = ", ".join(f"{h}:{settings.port}" for h in settings.hosts)
    role = settings.reader.user
    if isinstance(exc, NoHostAvailable):
        errors = list(exc.errors.values()) if isinstance(exc.errors, dict) else []
        if any(isinstance(e, AuthenticationFailed) for e in errors):
            return f"Cassandra at {where} refused the login of {role}: check CASSANDRA_READER_PASSWORD."
        if "using keyspace" in str(exc):
            return f"Keyspace {settings.keyspace} not found at {where}: run `make up` to create the schema."
        return f"Cassandra is unreachable at {where}. Retrying at every refresh."
    if isinstance(exc, Unauthorized):
        return f"Role {role} lacks a grant: {_server_message(exc)}. Run `make up` to restore the grants."
    if isinstance(exc, InvalidRequest):
        return f"Schema problem in keyspace {settings.keyspace}: {_server_message(exc)}. Run `make up`."
    if isinstance(exc, (OperationTimedOut, ReadTimeout, ReadFailure, Unavailable)):
        return (
            f"Cassandra at {where} did not answer in time ({type(exc).__name__}). Retrying at every refresh."
        )
    return f"Reading Cassandra failed ({type(exc).__name__}: {exc}). Retrying at every refresh."


def _server_message(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r'message="([^"]*)"', text)
    return match.group(1) if match else text


# --- Reads ----------------------------------------------------------------------------------------


def _days_back(now: dt.datetime, max_days: int) -> Iterator[dt.date]:
    today = now.astimezone(dt.UTC).date()
    for back in range(max_days):
        yield today - dt.timedelta(days=back)


def _walk(session: Session, cql: str, now: dt.datetime, limit: int, max_days: int) -> list[Any]:
    """Rows of a day-partitioned table, newest first: today's partition, then the day before..."""
    rows: list[Any] = []
    for day in _days_back(now, max_days):
        rows.extend(session.execute(cql, (day, limit - len(rows))))
        if len(rows) >= limit:
            break
    return rows


def latest_users(session: Session, limit: int, now: dt.datetime) -> pd.DataFrame:
    """The newest `limit` users by ingestion time (operator only: names are personal data)."""
    rows = _walk(
        session,
        "SELECT ingestion_time, user_id, full_name, gender, age, country, city, nat "
        "FROM latest_users WHERE day = %s LIMIT %s",
        now,
        limit,
        LATEST_MAX_DAYS,
    )
    records = [
        (r.full_name, r.gender, r.age, r.country, r.city, r.nat, utc(r.ingestion_time)) for r in rows[:limit]
    ]
    frame = pd.DataFrame.from_records(records, columns=list(LATEST_COLUMNS))
    frame["age"] = frame["age"].astype("Int64")
    frame["ingestion time"] = pd.to_datetime(frame["ingestion time"], utc=True)
    return frame


def newest_ingestion(session: Session, now: dt.datetime) -> dt.datetime | None:
    """Ingestion time of the newest row, for the freshness figure (no personal data read)."""
    rows = _walk(
        session, "SELECT ingestion_time FROM latest_users WHERE day = %s LIMIT %s", now, 1, LATEST_MAX_DAYS
    )
    return utc(rows[0].ingestion_time) if rows else None


def users_since(session: Session, since: dt.datetime, now: dt.datetime) -> int:
    """Rows ingested after `since` (a clustering range inside one or two day partitions)."""
    since = since.astimezone(dt.UTC)
    days = {since.date(), now.astimezone(dt.UTC).date()}
    total = 0
    for day in sorted(days):
        row = session.execute(
            "SELECT COUNT(*) AS n FROM latest_users WHERE day = %s AND ingestion_time > %s", (day, since)
        ).one()
        total += int(row.n) if row else 0
    return total


def country_stats(session: Session) -> pd.DataFrame:
    """country, users, sum_age (one row per country; the table holds a few hundred at most)."""
    rows = session.execute("SELECT country, count_users, sum_age FROM country_stats")
    return _frame(
        [(r.country, r.count_users or 0, r.sum_age or 0) for r in rows], ["country", "users", "sum_age"]
    )


def gender_stats(session: Session) -> pd.DataFrame:
    rows = session.execute("SELECT gender, count_users, sum_age FROM gender_stats")
    return _frame(
        [(r.gender, r.count_users or 0, r.sum_age or 0) for r in rows], ["gender", "users", "sum_age"]
    ).sort_values("gender", ignore_index=True)


def age_band_stats(session: Session) -> pd.DataFrame:
    rows = session.execute("SELECT age_band, count_users FROM age_band_stats")
    frame = _frame([(r.age_band, r.count_users or 0) for r in rows], ["age band", "users"])
    order = sorted(frame["age band"], key=_band_key)
    return frame.set_index("age band").loc[order].reset_index()


def quality_metrics(session: Session, now: dt.datetime, limit: int = METRICS_MAX_ROWS) -> pd.DataFrame:
    """The newest micro-batches' quality rows, newest first."""
    rows = _walk(
        session,
        "SELECT batch_time, batch_id, records_in, users_in, valid, quarantined, reasons "
        "FROM quality_metrics WHERE day = %s LIMIT %s",
        now,
        limit,
        METRICS_MAX_DAYS,
    )
    records = [
        (
            utc(r.batch_time),
            r.batch_id,
            r.records_in or 0,
            r.users_in or 0,
            r.valid or 0,
            r.quarantined or 0,
            dict(r.reasons or {}),
        )
        for r in rows
    ]
    frame = _frame(records, ["batch time", "batch id", "records", "users", "valid", "quarantined", "reasons"])
    checked = frame["valid"] + frame["quarantined"]
    frame["quarantined %"] = (100.0 * frame["quarantined"] / checked.where(checked > 0)).fillna(0.0)
    frame["batch time"] = pd.to_datetime(frame["batch time"], utc=True)
    return frame


def pipeline_metrics(session: Session, now: dt.datetime, limit: int = METRICS_MAX_ROWS) -> pd.DataFrame:
    """The newest streaming progress rows, newest first."""
    rows = _walk(
        session,
        "SELECT batch_time, query_name, batch_id, input_rows, input_rows_per_second, "
        "processed_rows_per_second, trigger_ms, durations_ms, quarantined "
        "FROM pipeline_metrics WHERE day = %s LIMIT %s",
        now,
        limit,
        METRICS_MAX_DAYS,
    )
    records = [
        (
            utc(r.batch_time),
            r.query_name,
            r.batch_id,
            r.input_rows or 0,
            float(r.input_rows_per_second or 0.0),
            float(r.processed_rows_per_second or 0.0),
            batch_duration_ms(r.trigger_ms, r.durations_ms),
            r.quarantined or 0,
        )
        for r in rows
    ]
    frame = _frame(
        records,
        [
            "batch time",
            "query",
            "batch id",
            "input rows",
            "input rows/s",
            "processed rows/s",
            "duration ms",
            "quarantined",
        ],
    )
    frame["batch time"] = pd.to_datetime(frame["batch time"], utc=True)
    return frame


def _frame(records: Sequence[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(records), columns=columns)


@dataclass(frozen=True)
class Snapshot:
    """Everything one refresh of the page shows, read in one go."""

    genders: pd.DataFrame
    countries: pd.DataFrame
    bands: pd.DataFrame
    quality: pd.DataFrame
    pipeline: pd.DataFrame
    last_minute: int
    newest: dt.datetime | None
    latest: pd.DataFrame | None  # operators only: never read for a viewer


def snapshot(session: Session, now: dt.datetime, latest_n: int | None) -> Snapshot:
    return Snapshot(
        genders=gender_stats(session),
        countries=country_stats(session),
        bands=age_band_stats(session),
        quality=quality_metrics(session, now),
        pipeline=pipeline_metrics(session, now),
        last_minute=users_since(session, now - LAST_MINUTE, now),
        newest=newest_ingestion(session, now),
        latest=latest_users(session, latest_n, now) if latest_n else None,
    )


# --- Pure figures ---------------------------------------------------------------------------------


def batch_duration_ms(trigger_ms: int | None, durations: dict[str, int] | None) -> int | None:
    """The batch's wall time: the trigger duration, else Spark's triggerExecution entry."""
    if trigger_ms is not None:
        return int(trigger_ms)
    value = (durations or {}).get("triggerExecution")
    return int(value) if value is not None else None


@dataclass(frozen=True)
class KeyFigures:
    total_users: int
    countries: int
    average_age: float | None
    last_minute: int
    newest: dt.datetime | None


def key_figures(
    genders: pd.DataFrame, countries: pd.DataFrame, last_minute: int, newest: dt.datetime | None
) -> KeyFigures:
    """Totals from the gender table (every user has exactly one gender row, 'unknown' included);
    the average age is exact: the sum of ages over the count, not an average of averages."""
    total = int(genders["users"].sum())
    ages = int(genders["sum_age"].sum())
    return KeyFigures(
        total_users=total,
        countries=int((countries["users"] > 0).sum()),
        average_age=round(ages / total, 1) if total else None,
        last_minute=last_minute,
        newest=newest,
    )


def freshness_seconds(newest: dt.datetime | None, now: dt.datetime) -> float | None:
    """Age of the newest row; None when there is none. Never negative (clock skew)."""
    if newest is None:
        return None
    return max(0.0, (now - newest).total_seconds())


def human_age(seconds: float | None) -> str:
    """Compact, to fit a metric: '4s', '3m 20s', '2h 5m', '3d 4h'; '-' when unknown."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86_400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86_400}d {s % 86_400 // 3600}h"


def suppressed(count: int, min_count: int | None) -> str:
    """A count as shown: '< k' below the threshold k, the number otherwise."""
    if min_count is not None and count < min_count:
        return f"< {min_count}"
    return str(count)


def _by_count(stats: pd.DataFrame) -> pd.DataFrame:
    ordered = stats[stats["users"] > 0].sort_values(["users", "country"], ascending=[False, True])
    return ordered.reset_index(drop=True)


def country_bars(stats: pd.DataFrame, top_n: int, min_count: int | None = None) -> pd.DataFrame:
    """Users per country for the bar chart: the top N, then one 'Other' row for the rest.

    With `min_count` (viewers), countries below it never get a bar of their own: they are
    counted into 'Other', and 'Other' itself has no value when it is below the threshold.
    Columns: country, users (None when hidden), label (what the tooltip shows).
    """
    ordered = _by_count(stats)
    visible = ordered if min_count is None else ordered[ordered["users"] >= min_count]
    top = visible.head(top_n)
    rest = ordered[~ordered["country"].isin(top["country"])]
    rows: list[tuple[str, float | None, str]] = [
        (str(c), float(n), str(n)) for c, n in zip(top["country"], top["users"], strict=True)
    ]
    if len(rest):
        other = int(rest["users"].sum())
        label = suppressed(other, min_count)
        hidden = min_count is not None and other < min_count
        name = f"Other ({len(rest)} {'country' if len(rest) == 1 else 'countries'})"
        rows.append((name, None if hidden else float(other), label))
    return pd.DataFrame.from_records(rows, columns=["country", "users", "label"])


def country_ages(stats: pd.DataFrame, top_n: int, min_count: int | None = None) -> pd.DataFrame:
    """Average age of the N largest countries (exact: sum / count); a viewer sees none below k."""
    ordered = _by_count(stats)
    if min_count is not None:
        ordered = ordered[ordered["users"] >= min_count]
    top = ordered.head(top_n)
    return pd.DataFrame(
        {
            "country": top["country"].astype(str).tolist(),
            "average age": (top["sum_age"] / top["users"]).round(1).tolist(),
            "users": top["users"].astype(int).tolist(),
        }
    )


def country_table(stats: pd.DataFrame, min_count: int | None = None) -> pd.DataFrame:
    """Every country with its figures as shown: counts below k as '< k' and no average for them."""
    ordered = _by_count(stats)
    users = [suppressed(int(n), min_count) for n in ordered["users"]]
    ages = [
        "-" if min_count is not None and n < min_count else f"{s / n:.1f}"
        for n, s in zip(ordered["users"], ordered["sum_age"], strict=True)
    ]
    return pd.DataFrame(
        {"country": ordered["country"].astype(str).tolist(), "users": users, "average age": ages}
    )


def gender_split(genders: pd.DataFrame) -> pd.DataFrame:
    total = int(genders["users"].sum())
    frame = genders[["gender", "users"]].copy()
    frame["share %"] = (100.0 * frame["users"] / total).round(1) if total else 0.0
    return frame.reset_index(drop=True)


def reason_totals(quality: pd.DataFrame) -> pd.DataFrame:
    """Quarantine reasons summed over the batches shown, most frequent first (zeros dropped)."""
    totals: dict[str, int] = {}
    for reasons in quality["reasons"]:
        for code, count in reasons.items():
            totals[code] = totals.get(code, 0) + int(count or 0)
    rows = sorted(((c, n) for c, n in totals.items() if n > 0), key=lambda item: (-item[1], item[0]))
    return pd.DataFrame.from_records(rows, columns=["reason", "rows"])


def _band_key(label: str) -> tuple[int, str]:
    # "0-17" < "18-24" < ... < "65+" < "unknown": by the band's lower bound, unknown bands last.
    match = re.match(r"^(\d+)", label)
    return (int(match.group(1)), label) if match else (10**6, label)
