"""Insights: named analyses over MongoDB, Cassandra and the Delta lake, and their report.

Each analysis is data: its question, why it matters, the store it runs on, and a
function that runs the query there and returns the rows together with the exact query
text it executed, so the report (and docs/INSIGHTS.md) show what really ran.

Where each one runs, and why:
- MongoDB (`randomUserCollection`, one document per user): questions about people.
  Pipelines use only stages the local server (FerretDB 1.24) has, and FerretDB 1.24 has
  only the `$sum` and `$count` accumulators and no expression operators in `$project`
  (no `$avg`, `$min`, `$median`, `$year`, `$divide`, `$cond`...). So the server reduces
  the documents to exact grouped counts (e.g. users per country and age) and Python
  finishes the statistics from those histograms (mean, median, quartiles: exact, not
  approximated). The same pipelines run unchanged on a real MongoDB.
- Cassandra: questions the serving tables were keyed for (aggregates by group, quality
  metrics and new users by UTC day partition); never ALLOW FILTERING.
- Delta (Spark SQL): history the serving stores do not keep: every Kafka record in bronze,
  the quarantine, and the versions of the gold tables (time travel).

`python -m jobs.insights` runs the Mongo and Cassandra analyses in this process and the
Delta ones through `scripts/spark-submit.sh jobs/insights.py --delta-json FILE` (the
project's pinned jars and ivy cache), then writes reports/insights.{md,html,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pymongo import MongoClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import settings as common_settings
from common.settings import Settings
from jobs import insights_report
from jobs import settings as job_settings
from ops.cassandra_setup import session as cassandra_session

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
Store = Literal["mongo", "cassandra", "delta"]
STORES: tuple[Store, ...] = ("mongo", "cassandra", "delta")
Row = dict[str, Any]
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Result:
    """What an analysis returns: the query it ran (verbatim), the columns and the rows."""

    query: str
    columns: tuple[str, ...]
    rows: list[Row]
    note: str = ""


@dataclass
class Sources:
    """Connections and parameters the analyses run against (only the needed ones are set).

    `mongo` is a pymongo Database, `cassandra` a driver Session, `spark` a SparkSession
    with Delta; `tables` maps a lake table name (bronze, quarantine, gold_country_stats)
    to its path. Tests pass their own collection, keyspace and paths to stay isolated.
    """

    mongo: Any = None
    collection: str = "randomUserCollection"
    cassandra: Any = None
    keyspace: str = ""
    spark: Any = None
    tables: Mapping[str, str] = field(default_factory=dict)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    days: int = 2
    top: int = 5
    min_users: int = 20
    versions_ago: int = 5
    as_of_hours: float = 24.0

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(dt.UTC).date()


@dataclass(frozen=True)
class Analysis:
    name: str
    title: str
    question: str
    why: str
    store: Store
    run: Callable[[Sources], Result]
    # How Python finishes what the server returned ("" when the query's rows are shown as is).
    finish: str = ""
    # (label column, value column) of the bar chart in the HTML report.
    chart: tuple[str, str] | None = None


# --- small exact statistics -----------------------------------------------------------------


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _pct(part: float, whole: float) -> float | None:
    return None if not whole else round(100.0 * part / whole, 2)


def age_summary(ages: Counter[int]) -> Row:
    """Exact statistics of an age histogram: mean, quartiles (inclusive method), min, max."""
    values = sorted(ages.elements())
    if not values:
        return {"users": 0, "mean_age": None, "p25": None, "median_age": None, "p75": None}
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {
        "users": len(values),
        "mean_age": _round(statistics.fmean(values)),
        "p25": _round(q1),
        "median_age": _round(q2),
        "p75": _round(q3),
        "min_age": values[0],
        "max_age": values[-1],
    }


def _label(value: Any) -> str:
    return UNKNOWN if value is None or (isinstance(value, str) and not value.strip()) else str(value)


def _hour(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:00")


# --- MongoDB ----------------------------------------------------------------------------------


def _pipeline_text(collection: str, pipeline: Sequence[Mapping[str, Any]]) -> str:
    """The pipeline as mongosh takes it, one stage per line."""
    stages = ",\n".join(f"  {json.dumps(stage)}" for stage in pipeline)
    return f"db.{collection}.aggregate([\n{stages}\n])"


def _aggregate(src: Sources, pipeline: list[dict[str, Any]]) -> tuple[str, list[Row]]:
    docs = list(src.mongo[src.collection].aggregate(pipeline))
    return _pipeline_text(src.collection, pipeline), docs


def _age_by(key: str) -> list[dict[str, Any]]:
    return [
        {"$match": {"age": {"$ne": None}}},
        {"$group": {"_id": {key: f"${key}", "age": "$age"}, "users": {"$sum": 1}}},
        {"$sort": {f"_id.{key}": 1, "_id.age": 1}},
    ]


AGE_COLUMNS = ("users", "mean_age", "p25", "median_age", "p75", "min_age", "max_age")


def _age_distribution(src: Sources, key: str) -> Result:
    query, docs = _aggregate(src, _age_by(key))
    hist: dict[str, Counter[int]] = defaultdict(Counter)
    for doc in docs:
        hist[_label(doc["_id"].get(key))][int(doc["_id"]["age"])] += int(doc["users"])
    rows = [{key: group, **age_summary(ages)} for group, ages in hist.items()]
    rows.sort(key=lambda r: (-r["users"], r[key]))
    return Result(query, (key, *AGE_COLUMNS), rows)


def age_by_country(src: Sources) -> Result:
    return _age_distribution(src, "country")


def age_by_gender(src: Sources) -> Result:
    return _age_distribution(src, "gender")


GENDER_BY_NAT: list[dict[str, Any]] = [
    {"$group": {"_id": {"nat": "$nat", "gender": "$gender"}, "users": {"$sum": 1}}},
    {"$sort": {"_id.nat": 1, "_id.gender": 1}},
]


def gender_by_nationality(src: Sources) -> Result:
    query, docs = _aggregate(src, GENDER_BY_NAT)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in docs:
        counts[_label(doc["_id"].get("nat"))][_label(doc["_id"].get("gender"))] += int(doc["users"])
    rows: list[Row] = []
    for nat, by_gender in counts.items():
        users = sum(by_gender.values())
        female, male = by_gender["female"], by_gender["male"]
        rows.append(
            {
                "nat": nat,
                "users": users,
                "female": female,
                "male": male,
                "other": users - female - male,
                "female_pct": _pct(female, users),
                "males_per_100_females": _round(100.0 * male / female, 1) if female else None,
            }
        )
    rows.sort(key=lambda r: (-(r["female_pct"] or 0.0), r["nat"]))
    columns = ("nat", "users", "female", "male", "other", "female_pct", "males_per_100_females")
    return Result(query, columns, rows)


COHORTS: list[dict[str, Any]] = [
    {"$match": {"registered_date": {"$ne": None}, "birth_year": {"$ne": None}}},
    {
        "$group": {
            "_id": {"registered_date": "$registered_date", "birth_year": "$birth_year"},
            "users": {"$sum": 1},
        }
    },
]


def registration_cohorts(src: Sources) -> Result:
    query, docs = _aggregate(src, COHORTS)
    by_year: dict[int, Counter[int]] = defaultdict(Counter)
    for doc in docs:
        registered = doc["_id"]["registered_date"]
        year = registered.year if isinstance(registered, dt.date) else int(str(registered)[:4])
        by_year[year][year - int(doc["_id"]["birth_year"])] += int(doc["users"])
    total = sum(sum(c.values()) for c in by_year.values())
    rows: list[Row] = []
    for year in sorted(by_year):
        summary = age_summary(by_year[year])
        rows.append(
            {
                "registration_year": year,
                "users": summary["users"],
                "share_pct": _pct(summary["users"], total),
                "mean_age_then": summary["mean_age"],
                "median_age_then": summary["median_age"],
                "youngest_then": summary["min_age"],
                "oldest_then": summary["max_age"],
                "under_18_then": sum(n for age, n in by_year[year].items() if age < 18),
            }
        )
    columns = (
        "registration_year",
        "users",
        "share_pct",
        "mean_age_then",
        "median_age_then",
        "youngest_then",
        "oldest_then",
        "under_18_then",
    )
    return Result(query, columns, rows)


EMAIL_DOMAINS: list[dict[str, Any]] = [
    {"$group": {"_id": "$email_domain", "users": {"$sum": 1}}},
    {"$sort": {"users": -1, "_id": 1}},
]


def email_domains(src: Sources) -> Result:
    query, docs = _aggregate(src, EMAIL_DOMAINS)
    total = sum(int(d["users"]) for d in docs)
    rows: list[Row] = [
        {
            "email_domain": _label(d["_id"]),
            "users": int(d["users"]),
            "share_pct": _pct(int(d["users"]), total),
        }
        for d in docs
    ]
    rows.sort(key=lambda r: (-r["users"], r["email_domain"]))
    return Result(query, ("email_domain", "users", "share_pct"), rows)


CITIES: list[dict[str, Any]] = [
    {"$group": {"_id": {"country": "$country", "city": "$city"}, "users": {"$sum": 1}}},
    {"$sort": {"users": -1, "_id.country": 1, "_id.city": 1}},
]
CITIES_PER_COUNTRY = 3


def top_cities(src: Sources) -> Result:
    query, docs = _aggregate(src, CITIES)
    cities: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in docs:
        cities[_label(doc["_id"].get("country"))][_label(doc["_id"].get("city"))] += int(doc["users"])
    totals = {country: sum(c.values()) for country, c in cities.items()}
    top_countries = sorted(totals, key=lambda c: (-totals[c], c))[: src.top]
    rows: list[Row] = []
    for country in top_countries:
        ranked = sorted(cities[country].items(), key=lambda kv: (-kv[1], kv[0]))[:CITIES_PER_COUNTRY]
        rows.extend(
            {
                "country": country,
                "country_users": totals[country],
                "city": city,
                "users": users,
                "share_of_country_pct": _pct(users, totals[country]),
            }
            for city, users in ranked
        )
    return Result(query, ("country", "country_users", "city", "users", "share_of_country_pct"), rows)


# --- Cassandra --------------------------------------------------------------------------------


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
                "avg_age": _round(avg),
                "global_avg_age": _round(global_avg),
                "difference": _round(avg - global_avg),
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
            "share_pct": _pct(count, total),
            "avg_age": _round(sum_age / count) if count else None,
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
    rows = [{"age_band": band, "users": count, "share_pct": _pct(count, total)} for band, count in stats]
    rows.sort(key=lambda r: (_band_start(r["age_band"]), r["age_band"]))
    return Result(query, ("age_band", "users", "share_pct"), rows)


def _days(src: Sources) -> list[dt.date]:
    return [src.today - dt.timedelta(days=i) for i in range(src.days)]


def _per_day(src: Sources, template: str) -> tuple[str, list[Any]]:
    """Run a `WHERE day = ?` query on each of the last `days` UTC day partitions."""
    cql = _cql(src, template)
    statement = src.cassandra.prepare(cql)
    rows: list[Any] = []
    for day in _days(src):
        rows.extend(src.cassandra.execute(statement, (day,)))
    days = ", ".join(d.isoformat() for d in _days(src))
    return f"{cql}\n-- run once per UTC day partition: {days}", rows


QUALITY_CQL = "SELECT batch_time, valid, quarantined, reasons FROM {keyspace}.quality_metrics WHERE day = ?"


def quality_by_hour(src: Sources) -> Result:
    query, raw = _per_day(src, QUALITY_CQL)
    hours: dict[str, dict[str, Any]] = {}
    for r in raw:
        h = hours.setdefault(
            _hour(r.batch_time), {"batches": 0, "valid": 0, "quarantined": 0, "reasons": Counter()}
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
                "quarantine_pct": _pct(h["quarantined"], checked),
                "reasons": ", ".join(
                    f"{k}={v}" for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
                ),
            }
        )
    return Result(
        query, ("hour", "batches", "rows_checked", "quarantined", "quarantine_pct", "reasons"), rows
    )


NEW_USERS_CQL = "SELECT ingestion_time FROM {keyspace}.latest_users WHERE day = ?"


def new_users_by_hour(src: Sources) -> Result:
    query, raw = _per_day(src, NEW_USERS_CQL)
    counts = Counter(_hour(r.ingestion_time) for r in raw)
    rows = [{"hour": hour, "new_users": counts[hour]} for hour in sorted(counts)]
    return Result(query, ("hour", "new_users"), rows)


# --- Delta (Spark SQL) ------------------------------------------------------------------------

# Users in a Kafka record: the size of its `results` array; 0 for a record that does not parse
# (size(null) is -1, or null under ANSI: greatest() makes both 0).
BRONZE_VOLUME_SQL = """SELECT date_format(date_trunc('HOUR', timestamp), 'yyyy-MM-dd HH:00') AS hour,
       count(*) AS records,
       CAST(sum(greatest(size(from_json(CAST(value AS STRING), 'results ARRAY<STRING>').results), 0))
            AS BIGINT) AS users,
       CAST(sum(length(value)) AS BIGINT) AS bytes
FROM delta.`{bronze}`
GROUP BY 1
ORDER BY 1"""

QUARANTINE_RATE_SQL = """WITH checked AS (
  SELECT date_format(date_trunc('HOUR', timestamp), 'yyyy-MM-dd HH:00') AS hour,
         CAST(sum(greatest(size(from_json(CAST(value AS STRING), 'results ARRAY<STRING>').results), 0))
              AS BIGINT) AS users_in
  FROM delta.`{bronze}`
  GROUP BY 1
), rejected AS (
  SELECT date_format(date_trunc('HOUR', kafka_timestamp), 'yyyy-MM-dd HH:00') AS hour,
         reason,
         count(*) AS rows
  FROM delta.`{quarantine}` LATERAL VIEW explode(reasons) r AS reason
  GROUP BY 1, 2
)
SELECT r.hour, r.reason, r.rows, c.users_in,
       round(100 * r.rows / c.users_in, 2) AS pct_of_users
FROM rejected r LEFT JOIN checked c ON r.hour = c.hour
ORDER BY r.hour, r.rows DESC, r.reason"""

HISTORY_SQL = "DESCRIBE HISTORY delta.`{gold}`"

TIME_TRAVEL_SQL = """SELECT coalesce(now.country, then.country) AS country,
       coalesce(then.count_users, 0) AS users_then,
       coalesce(now.count_users, 0) AS users_now,
       coalesce(now.count_users, 0) - coalesce(then.count_users, 0) AS new_users,
       round(then.avg_age, 2) AS avg_age_then,
       round(now.avg_age, 2) AS avg_age_now
FROM delta.`{gold}` AS now
FULL OUTER JOIN delta.`{gold}` {as_of} AS then
  ON now.country = then.country
ORDER BY new_users DESC, country"""


def _table(src: Sources, name: str) -> str:
    """A lake path to quote in Spark SQL (delta.`path`): a backtick would end the quote."""
    path = src.tables[name]
    if "`" in path:
        raise ValueError(f"lake path {path!r} contains a backtick")
    return path


def _sql_rows(src: Sources, sql: str) -> list[Row]:
    return [row.asDict() for row in src.spark.sql(sql).collect()]


def bronze_volume_by_hour(src: Sources) -> Result:
    sql = BRONZE_VOLUME_SQL.format(bronze=_table(src, "bronze"))
    return Result(sql, ("hour", "records", "users", "bytes"), _sql_rows(src, sql))


def quarantine_rate_by_reason(src: Sources) -> Result:
    sql = QUARANTINE_RATE_SQL.format(bronze=_table(src, "bronze"), quarantine=_table(src, "quarantine"))
    return Result(sql, ("hour", "reason", "rows", "users_in", "pct_of_users"), _sql_rows(src, sql))


def gold_history(src: Sources) -> tuple[str, list[tuple[int, dt.datetime]]]:
    """(query, [(version, commit time UTC)] oldest first) of gold_country_stats."""
    sql = HISTORY_SQL.format(gold=_table(src, "gold_country_stats"))
    rows = (
        src.spark.sql(sql)
        .select("version", F.date_format("timestamp", "yyyy-MM-dd HH:mm:ss.SSS").alias("ts"))
        .collect()
    )
    history = [
        (int(r.version), dt.datetime.strptime(r.ts, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC))
        for r in rows
    ]
    return sql, sorted(history)


def _time_travel(src: Sources, as_of: str, note: str, history_sql: str) -> Result:
    sql = TIME_TRAVEL_SQL.format(gold=_table(src, "gold_country_stats"), as_of=as_of)
    columns = ("country", "users_then", "users_now", "new_users", "avg_age_then", "avg_age_now")
    return Result(f"{history_sql};\n\n{sql}", columns, _sql_rows(src, sql), note)


def country_stats_versions_ago(src: Sources) -> Result:
    history_sql, history = gold_history(src)
    latest = history[-1][0]
    version = max(latest - src.versions_ago, history[0][0])
    note = f"latest version {latest}, compared with version {version}"
    if latest - src.versions_ago < history[0][0]:
        note += f" (the table has fewer than {src.versions_ago} older versions: its first one)"
    return _time_travel(src, f"VERSION AS OF {version}", note, history_sql)


def country_stats_as_of(src: Sources) -> Result:
    history_sql, history = gold_history(src)
    target = src.now.astimezone(dt.UTC) - dt.timedelta(hours=src.as_of_hours)
    first_version, first_time = history[0]
    if target < first_time:
        # Delta refuses a timestamp before the first commit: compare with the first version.
        note = (
            f"{src.as_of_hours:g} h ago ({target:%Y-%m-%d %H:%M:%S} UTC) is before the table's first "
            f"commit ({first_time:%Y-%m-%d %H:%M:%S} UTC): compared with that first version"
        )
        return _time_travel(src, f"VERSION AS OF {first_version}", note, history_sql)
    if target > history[-1][1]:
        note = f"no commit in the last {src.as_of_hours:g} h: then and now are the same version"
        return _time_travel(src, f"VERSION AS OF {history[-1][0]}", note, history_sql)
    stamp = target.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    note = f"as of {stamp} UTC ({src.as_of_hours:g} h before the run)"
    return _time_travel(src, f"TIMESTAMP AS OF '{stamp}'", note, history_sql)


# --- the catalogue ----------------------------------------------------------------------------

ANALYSES: tuple[Analysis, ...] = (
    Analysis(
        "age_by_country",
        "Age distribution per country",
        "How old are the users of each country: mean, quartiles, median, range?",
        "Audiences differ by market; a median and quartiles resist the outliers a mean hides.",
        "mongo",
        age_by_country,
        "exact mean, quartiles (inclusive method) and median from the per-(country, age) counts",
        ("country", "median_age"),
    ),
    Analysis(
        "age_by_gender",
        "Age distribution per gender",
        "Do the age profiles of women and men differ?",
        "A gap between the genders' ages changes who a campaign or product should target.",
        "mongo",
        age_by_gender,
        "exact mean, quartiles and median from the per-(gender, age) counts",
        ("gender", "median_age"),
    ),
    Analysis(
        "gender_by_nationality",
        "Gender ratio by nationality",
        "Which nationalities are the most unbalanced between women and men?",
        "An unbalanced sample skews every per-nationality figure; it is also a check of the source.",
        "mongo",
        gender_by_nationality,
        "pivot of the per-(nat, gender) counts; shares and ratio",
        ("nat", "female_pct"),
    ),
    Analysis(
        "registration_cohorts",
        "Registration cohorts",
        "How many users registered each year, and how old were they then?",
        "Cohorts show the growth of the user base and whether it recruits younger or older people over time.",
        "mongo",
        registration_cohorts,
        "age then = year of registration - birth year (the documents keep the birth year only); "
        "per-year counts, mean and median from the per-(registered_date, birth_year) counts; "
        "under_18_then counts minors at registration (a negative age = registered before birth: "
        "the source draws both dates independently)",
        ("registration_year", "users"),
    ),
    Analysis(
        "email_domains",
        "Share of users per email domain",
        "Which email providers do users use?",
        "Deliverability and anti-spam depend on the providers; one dominant domain is a data-source smell.",
        "mongo",
        email_domains,
        "shares of the total",
        ("email_domain", "share_pct"),
    ),
    Analysis(
        "top_cities",
        "Top cities of the top countries",
        "Within the countries with most users, which cities concentrate them?",
        "Where to open an office, place servers or run local events.",
        "mongo",
        top_cities,
        f"top countries by users, then their top {CITIES_PER_COUNTRY} cities (ties by name)",
        ("city", "users"),
    ),
    Analysis(
        "country_age_deviation",
        "Countries whose average age differs most from the global one",
        "Which countries are much younger or older than the user base as a whole?",
        "Outlier markets need their own content; a large gap on few users is a sampling warning.",
        "cassandra",
        country_age_deviation,
        "global average = sum(sum_age) / sum(count_users) over all countries, exact; countries with "
        "fewer than --min-users users left out; sorted by the absolute difference",
        ("country", "difference"),
    ),
    Analysis(
        "gender_overview",
        "Users and average age per gender",
        "What is the gender split of all users, and their average age?",
        "The headline split the live dashboard follows; sum_age keeps the average exact.",
        "cassandra",
        gender_overview,
        "shares of the total; avg = sum_age / count_users",
        ("gender", "users"),
    ),
    Analysis(
        "age_bands",
        "Users per age band",
        "How are users spread over the age bands?",
        "The age pyramid of the base, for segmenting and for spotting an ageing or rejuvenating audience.",
        "cassandra",
        age_bands,
        "shares of the total, bands in age order",
        ("age_band", "users"),
    ),
    Analysis(
        "quality_by_hour",
        "Data quality per hour",
        "What share of incoming records is quarantined, and why, hour by hour?",
        "A rising quarantine rate means the source changed or broke; the reasons say where to look.",
        "cassandra",
        quality_by_hour,
        "sum of the micro-batches' counts and reason maps per hour (UTC)",
        ("hour", "quarantine_pct"),
    ),
    Analysis(
        "new_users_by_hour",
        "New users per hour",
        "How many new (never seen before) users arrived each hour?",
        "The growth signal: it excludes users the source sent again, unlike raw ingestion volume.",
        "cassandra",
        new_users_by_hour,
        "count per hour (UTC) of the rows of each day partition",
        ("hour", "new_users"),
    ),
    Analysis(
        "bronze_volume_by_hour",
        "Ingestion volume per hour (bronze)",
        "How many Kafka records, users and bytes came in each hour, duplicates and rejects included?",
        "Capacity planning and producer health: a gap is an outage, a spike a replay or a burst.",
        "delta",
        bronze_volume_by_hour,
        chart=("hour", "users"),
    ),
    Analysis(
        "quarantine_rate_by_reason",
        "Quarantine rate by reason over time (Delta)",
        "For each hour, how many rows failed each quality rule, relative to the users received?",
        "Separates a broken producer (one reason explodes) from a noisy source (all reasons creep up).",
        "delta",
        quarantine_rate_by_reason,
        chart=("reason", "rows"),
    ),
    Analysis(
        "country_stats_versions_ago",
        "country_stats N versions ago vs now (time travel)",
        "How did the per-country figures look a few micro-batches ago, and what changed since?",
        "Delta keeps every version of the gold table: an audit of what the dashboard showed at that moment.",
        "delta",
        country_stats_versions_ago,
        chart=("country", "new_users"),
    ),
    Analysis(
        "country_stats_as_of",
        "country_stats as of yesterday vs now (time travel)",
        "How did the per-country figures look 24 hours ago?",
        "Day-over-day growth per market without keeping snapshots: TIMESTAMP AS OF reads the past table.",
        "delta",
        country_stats_as_of,
        chart=("country", "new_users"),
    ),
)

BY_NAME: dict[str, Analysis] = {a.name: a for a in ANALYSES}


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One analysis's run: its result, or the one-line error that stopped it."""

    name: str
    result: Result | None
    error: str = ""
    seconds: float = 0.0


def _one_line(exc: BaseException) -> str:
    for line in str(exc).strip().splitlines():
        if line.strip():
            return f"{type(exc).__name__}: {line.strip()[:300]}"
    return type(exc).__name__


def run_analyses(analyses: Iterable[Analysis], src: Sources) -> list[Outcome]:
    """Run each analysis; a failing one is reported with its error, the others still run."""
    outcomes = []
    for analysis in analyses:
        start = time.monotonic()
        try:
            result = analysis.run(src)
            outcomes.append(Outcome(analysis.name, result, seconds=time.monotonic() - start))
            log.info("%s: %d rows", analysis.name, len(result.rows))
        except Exception as exc:
            log.error("%s failed: %s", analysis.name, _one_line(exc))
            outcomes.append(Outcome(analysis.name, None, _one_line(exc), time.monotonic() - start))
    return outcomes


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def outcomes_to_json(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    return [
        {
            "name": o.name,
            "error": o.error,
            "seconds": round(o.seconds, 3),
            "result": None
            if o.result is None
            else {
                "query": o.result.query,
                "columns": list(o.result.columns),
                "rows": [{k: _jsonable(v) for k, v in row.items()} for row in o.result.rows],
                "note": o.result.note,
            },
        }
        for o in outcomes
    ]


def outcomes_from_json(items: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    outcomes = []
    for item in items:
        raw = item.get("result")
        result = (
            None
            if raw is None
            else Result(
                raw["query"], tuple(raw["columns"]), [dict(r) for r in raw["rows"]], raw.get("note", "")
            )
        )
        outcomes.append(Outcome(item["name"], result, item.get("error", ""), float(item.get("seconds", 0.0))))
    return outcomes


def _selected(names: Sequence[str] | None, store: Store) -> list[Analysis]:
    return [a for a in ANALYSES if a.store == store and (not names or a.name in names)]


def _run_mongo(settings: Settings, src: Sources, names: Sequence[str] | None) -> list[Outcome]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo.uri(settings.mongo.reader), serverSelectionTimeoutMS=15_000, tz_aware=False
    )
    try:
        return run_analyses(_selected(names, "mongo"), replace(src, mongo=client[settings.mongo.database]))
    finally:
        client.close()


def _run_cassandra(settings: Settings, src: Sources, names: Sequence[str] | None) -> list[Outcome]:
    c = settings.cassandra
    with cassandra_session(c, c.reader) as cassandra:
        return run_analyses(
            _selected(names, "cassandra"), replace(src, cassandra=cassandra, keyspace=c.keyspace)
        )


def lake_tables(lake_dir: Path) -> dict[str, str]:
    return {name: str(lake_dir / name) for name in ("bronze", "quarantine", "gold_country_stats")}


def _run_delta_subprocess(names: Sequence[str] | None, src: Sources) -> list[Outcome]:
    """Run the Delta analyses under scripts/spark-submit.sh (pinned jars), read back their JSON."""
    with tempfile.TemporaryDirectory(prefix="insights-") as tmp:
        out = Path(tmp) / "delta.json"
        cmd = [
            str(ROOT / "scripts" / "spark-submit.sh"),
            str(ROOT / "jobs" / "insights.py"),
            "--delta-json",
            str(out),
            "--versions-ago",
            str(src.versions_ago),
            "--as-of-hours",
            str(src.as_of_hours),
            "--now",
            src.now.isoformat(),
        ]
        for name in names or ():
            cmd += ["--only", name]
        log.info("running the Delta analyses through scripts/spark-submit.sh (a Spark start: ~30-60 s)")
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            error = f"spark-submit exited {proc.returncode}: {tail}"
            return [Outcome(a.name, None, error) for a in _selected(names, "delta")]
        return outcomes_from_json(json.loads(out.read_text()))


def _delta_main(args: argparse.Namespace) -> int:
    """Entry under spark-submit: the Delta analyses only, results as JSON for the parent."""
    job = job_settings.load()
    spark = SparkSession.builder.appName("insights").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        src = Sources(
            spark=spark,
            tables=lake_tables(job.lake_dir),
            now=args.now,
            versions_ago=args.versions_ago,
            as_of_hours=args.as_of_hours,
        )
        outcomes = run_analyses(_selected(args.only, "delta"), src)
    finally:
        spark.stop()
    Path(args.delta_json).write_text(json.dumps(outcomes_to_json(outcomes)))
    return 0


def _aware(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the insight analyses and write the report.")
    parser.add_argument("--only", action="append", choices=sorted(BY_NAME), help="run only this analysis")
    parser.add_argument(
        "--stores", default=",".join(STORES), help="comma-separated: mongo,cassandra,delta (default: all)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="report folder (default reports/)")
    parser.add_argument(
        "--days", type=int, default=2, help="UTC day partitions read from Cassandra (default 2)"
    )
    parser.add_argument("--top", type=int, default=5, help="top countries in top_cities (default 5)")
    parser.add_argument(
        "--min-users", type=int, default=20, help="country_age_deviation: smallest country shown (default 20)"
    )
    parser.add_argument("--versions-ago", type=int, default=5, help="time travel: versions back (default 5)")
    parser.add_argument(
        "--as-of-hours", type=float, default=24.0, help="time travel: hours back (default 24)"
    )
    parser.add_argument("--now", type=_aware, default=dt.datetime.now(dt.UTC), help=argparse.SUPPRESS)
    parser.add_argument("--delta-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        parser.error(f"--stores: unknown {unknown}; choose from {list(STORES)}")
    args.stores = stores
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.delta_json:
        return _delta_main(args)

    settings = common_settings.load()
    src = Sources(
        now=args.now,
        days=args.days,
        top=args.top,
        min_users=args.min_users,
        versions_ago=args.versions_ago,
        as_of_hours=args.as_of_hours,
    )
    outcomes: list[Outcome] = []
    if "mongo" in args.stores:
        outcomes += _run_mongo(settings, src, args.only)
    if "cassandra" in args.stores:
        outcomes += _run_cassandra(settings, src, args.only)
    if "delta" in args.stores and _selected(args.only, "delta"):
        outcomes += _run_delta_subprocess(args.only, src)
    paths = insights_report.write(
        args.out,
        BY_NAME,
        outcomes,
        generated=src.now,
        sources={
            "mongo": f"{settings.mongo.database}.{src.collection}",
            "cassandra": settings.cassandra.keyspace,
            "delta": str(job_settings.from_settings(settings).lake_dir),
        },
        raw=outcomes_to_json(outcomes),
    )
    for path in paths:
        print(f"wrote {path}")
    failed = [o for o in outcomes if o.error]
    for o in failed:
        print(f"FAILED {o.name}: {o.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
