"""The analyses that run on Cassandra (CQL): by key and by UTC day partition, never a scan."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from analytics.model import Result, Row, Sources, hour_label, pct, rounded


def _cql(src: Sources, template: str) -> str:
    return template.format(keyspace=src.keyspace)


COUNTRY_DEVIATION_CQL = "SELECT country, count_users, sum_age FROM {keyspace}.country_stats"


def country_age_deviation(src: Sources) -> Result:
    query = _cql(src, COUNTRY_DEVIATION_CQL)
    stats = [(r.country, int(r.count_users or 0), int(r.sum_age or 0)) for r in src.cassandra.execute(query)]
    users = sum(s[1] for s in stats)
    global_avg = sum(s[2] for s in stats) / users if users else None
    rows: list[Row] = []
    small = 0
    for country, count, sum_age in stats:
        if count < max(src.min_users, 1) or global_avg is None:
            small += bool(count)
            continue
        avg = sum_age / count
        rows.append(
            {
                "country": country,
                "users": count,
                "avg_age": rounded(avg),
                "global_avg_age": rounded(global_avg),
                "difference": rounded(avg - global_avg),
            }
        )
    rows.sort(key=lambda r: (-abs(r["difference"]), r["country"]))
    note = (
        f"{small} countries with fewer than {src.min_users} users left out (too few to compare)"
        if small
        else ""
    )
    return Result(query, ("country", "users", "avg_age", "global_avg_age", "difference"), rows, note)


GENDER_CQL = "SELECT gender, count_users, sum_age FROM {keyspace}.gender_stats"


def gender_overview(src: Sources) -> Result:
    query = _cql(src, GENDER_CQL)
    stats = [(r.gender, int(r.count_users or 0), int(r.sum_age or 0)) for r in src.cassandra.execute(query)]
    total = sum(s[1] for s in stats)
    rows = [
        {
            "gender": gender,
            "users": count,
            "share_pct": pct(count, total),
            "avg_age": rounded(sum_age / count) if count else None,
        }
        for gender, count, sum_age in stats
    ]
    rows.sort(key=lambda r: (-r["users"], r["gender"]))
    return Result(query, ("gender", "users", "share_pct", "avg_age"), rows)


AGE_BAND_CQL = "SELECT age_band, count_users FROM {keyspace}.age_band_stats"


def _band_start(label: str) -> int:
    digits = label.split("-", maxsplit=1)[0].rstrip("+")
    return int(digits) if digits.isdigit() else 1_000


def age_bands(src: Sources) -> Result:
    query = _cql(src, AGE_BAND_CQL)
    stats = [(r.age_band, int(r.count_users or 0)) for r in src.cassandra.execute(query)]
    total = sum(s[1] for s in stats)
    rows = [{"age_band": band, "users": count, "share_pct": pct(count, total)} for band, count in stats]
    rows.sort(key=lambda r: (_band_start(r["age_band"]), r["age_band"]))
    return Result(query, ("age_band", "users", "share_pct"), rows)


def _per_day(src: Sources, template: str) -> tuple[str, list[Any]]:
    """Run a `WHERE day = ?` query on each of the last `days` UTC day partitions."""
    cql = _cql(src, template)
    statement = src.cassandra.prepare(cql)
    rows: list[Any] = []
    for day in src.utc_days():
        rows.extend(src.cassandra.execute(statement, (day,)))
    days = ", ".join(d.isoformat() for d in src.utc_days())
    return f"{cql}\n-- run once per UTC day partition: {days}", rows


QUALITY_CQL = "SELECT batch_time, valid, quarantined, reasons FROM {keyspace}.quality_metrics WHERE day = ?"


def quality_by_hour(src: Sources) -> Result:
    query, raw = _per_day(src, QUALITY_CQL)
    hours: dict[str, dict[str, Any]] = {}
    for r in raw:
        h = hours.setdefault(
            hour_label(r.batch_time), {"batches": 0, "valid": 0, "quarantined": 0, "reasons": Counter()}
        )
        h["batches"] += 1
        h["valid"] += int(r.valid or 0)
        h["quarantined"] += int(r.quarantined or 0)
        h["reasons"].update({k: int(v) for k, v in (r.reasons or {}).items() if v})
    rows: list[Row] = []
    for hour in sorted(hours):
        h = hours[hour]
        checked = h["valid"] + h["quarantined"]
        reasons: Counter[str] = h["reasons"]
        rows.append(
            {
                "hour": hour,
                "batches": h["batches"],
                "rows_checked": checked,
                "quarantined": h["quarantined"],
                "quarantine_pct": pct(h["quarantined"], checked),
                "reasons": ", ".join(
                    f"{k}={v}" for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
                ),
            }
        )
    return Result(
        query, ("hour", "batches", "rows_checked", "quarantined", "quarantine_pct", "reasons"), rows
    )


# Counted by the server one UTC hour of a day partition at a time (a clustering range): the
# rows are never shipped, so a day of a million new users is still a few dozen small replies.
NEW_USERS_CQL = (
    "SELECT count(*) AS users FROM {keyspace}.latest_users "
    "WHERE day = ? AND ingestion_time >= ? AND ingestion_time < ?"
)


def new_users_by_hour(src: Sources) -> Result:
    cql = _cql(src, NEW_USERS_CQL)
    statement = src.cassandra.prepare(cql)
    now = src.now.astimezone(dt.UTC)
    rows: list[Row] = []
    for day in sorted(src.utc_days()):
        for hour in range(24):
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
            if start > now:
                break
            users = int(
                src.cassandra.execute(statement, (day, start, start + dt.timedelta(hours=1))).one()[0]
            )
            if users:
                rows.append({"hour": hour_label(start), "new_users": users})
    days = ", ".join(d.isoformat() for d in src.utc_days())
    query = f"{cql}\n-- run once per UTC hour (up to now) of each day partition: {days}"
    return Result(query, ("hour", "new_users"), rows)
