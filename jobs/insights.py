"""Insights: named analyses over Cassandra and the Delta lake, and their report.

Each analysis is data: its question, why it matters, the store it runs on, and a
function that runs the query there and returns the rows together with the exact query
text it executed, so the report (and docs/INSIGHTS.md) show what really ran.

Where each one runs, and why: every analysis must answer in seconds at a million users.
- Delta (Spark SQL): questions about people, over `silver_users` (one row per person, every
  field the job keeps: country, city, nationality, dates of birth and registration, email
  domain), and the history the serving stores do not keep: every Kafka record in bronze,
  the quarantine, the versions of the gold tables (time travel). Spark reads only the
  columns a query needs and aggregates in parallel; a million users take seconds.
- Cassandra: questions the serving tables were keyed for (aggregates by group, quality
  metrics by UTC day partition, new users counted on the server one hour of a day
  partition at a time); never ALLOW FILTERING, never a scan of the users.
- Not MongoDB: the local server (FerretDB 1.24 on SQLite) evaluates every aggregation in
  its Go process over all documents, decoded one by one (a `$count` of 100,000 users takes
  17 s, a `$group` 25 s; a `$group` by (registered_date, birth_year) ran for 9+ minutes on
  58,500 users). The collection serves one person's document; statistics are Spark's.

`python -m jobs.insights` runs the Cassandra analyses in this process and the Delta ones
through `scripts/spark-submit.sh jobs/insights.py --delta-json FILE` (the project's pinned
jars and ivy cache), then writes reports/insights.{md,html,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import settings as common_settings
from common.settings import Settings
from jobs import insights_report
from jobs import settings as job_settings
from ops.cassandra_setup import session as cassandra_session

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
Store = Literal["cassandra", "delta"]
STORES: tuple[Store, ...] = ("cassandra", "delta")
Row = dict[str, Any]
UNKNOWN = "unknown"
LAKE_TABLES = ("bronze", "quarantine", "silver_users", "gold_country_stats")


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

    `cassandra` is a driver Session, `spark` a SparkSession with Delta; `tables` maps a
    lake table name (LAKE_TABLES) to its path. Tests and the benchmark pass their own
    keyspace and paths to stay isolated.
    """

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


# --- small helpers -----------------------------------------------------------------------------


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _pct(part: float, whole: float) -> float | None:
    return None if not whole else round(100.0 * part / whole, 2)


def _hour(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:00")


def _table(src: Sources, name: str) -> str:
    """A lake path to quote in Spark SQL (delta.`path`): a backtick would end the quote."""
    path = src.tables[name]
    if "`" in path:
        raise ValueError(f"lake path {path!r} contains a backtick")
    return path


def _sql_rows(src: Sources, sql: str) -> list[Row]:
    return [row.asDict() for row in src.spark.sql(sql).collect()]


# --- people (Delta silver_users, Spark SQL) ------------------------------------------------------


def _label(column: str) -> str:
    """The column, or 'unknown' when it is null or blank (SQL)."""
    return f"CASE WHEN trim({column}) <> '' THEN {column} ELSE '{UNKNOWN}' END"


# Exact statistics: Spark's percentile() interpolates linearly at position (n-1)*p, like
# Python's statistics.quantiles(method="inclusive") and numpy's default.
AGE_BY_SQL = """SELECT {label} AS {key},
       count(*) AS users,
       round(avg(age), 2) AS mean_age,
       round(percentile(age, 0.25), 2) AS p25,
       round(percentile(age, 0.5), 2) AS median_age,
       round(percentile(age, 0.75), 2) AS p75,
       min(age) AS min_age,
       max(age) AS max_age
FROM delta.`{silver}`
WHERE age IS NOT NULL
GROUP BY 1
ORDER BY users DESC, {key}"""

AGE_COLUMNS = ("users", "mean_age", "p25", "median_age", "p75", "min_age", "max_age")


def _age_distribution(src: Sources, key: str) -> Result:
    sql = AGE_BY_SQL.format(label=_label(key), key=key, silver=_table(src, "silver_users"))
    return Result(sql, (key, *AGE_COLUMNS), _sql_rows(src, sql))


def age_by_country(src: Sources) -> Result:
    return _age_distribution(src, "country")


def age_by_gender(src: Sources) -> Result:
    return _age_distribution(src, "gender")


GENDER_BY_NAT_SQL = """SELECT {label} AS nat,
       count(*) AS users,
       count_if(gender = 'female') AS female,
       count_if(gender = 'male') AS male,
       count(*) - count_if(gender = 'female') - count_if(gender = 'male') AS other,
       round(100 * count_if(gender = 'female') / count(*), 2) AS female_pct,
       round(100 * count_if(gender = 'male') / nullif(count_if(gender = 'female'), 0), 1)
         AS males_per_100_females
FROM delta.`{silver}`
GROUP BY 1
ORDER BY female_pct DESC, nat"""


def gender_by_nationality(src: Sources) -> Result:
    sql = GENDER_BY_NAT_SQL.format(label=_label("nat"), silver=_table(src, "silver_users"))
    columns = ("nat", "users", "female", "male", "other", "female_pct", "males_per_100_females")
    return Result(sql, columns, _sql_rows(src, sql))


# Age at registration in full years, from the two dates (a birthday later in the year than
# the registration day is not reached yet).
COHORTS_SQL = """WITH cohort AS (
  SELECT year(registered_date) AS registration_year,
         year(registered_date) - year(date_of_birth)
           - CASE WHEN date_format(registered_date, 'MMdd') < date_format(date_of_birth, 'MMdd')
                  THEN 1 ELSE 0 END AS age_then
  FROM delta.`{silver}`
  WHERE registered_date IS NOT NULL AND date_of_birth IS NOT NULL
)
SELECT registration_year,
       count(*) AS users,
       round(100 * count(*) / sum(count(*)) OVER (), 2) AS share_pct,
       round(avg(age_then), 2) AS mean_age_then,
       round(percentile(age_then, 0.5), 2) AS median_age_then,
       min(age_then) AS youngest_then,
       max(age_then) AS oldest_then,
       count_if(age_then < 18) AS under_18_then
FROM cohort
GROUP BY registration_year
ORDER BY registration_year"""


def registration_cohorts(src: Sources) -> Result:
    sql = COHORTS_SQL.format(silver=_table(src, "silver_users"))
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
    return Result(sql, columns, _sql_rows(src, sql))


EMAIL_DOMAINS_SQL = """SELECT {label} AS email_domain,
       count(*) AS users,
       round(100 * count(*) / sum(count(*)) OVER (), 2) AS share_pct
FROM delta.`{silver}`
GROUP BY 1
ORDER BY users DESC, email_domain"""


def email_domains(src: Sources) -> Result:
    sql = EMAIL_DOMAINS_SQL.format(label=_label("email_domain"), silver=_table(src, "silver_users"))
    return Result(sql, ("email_domain", "users", "share_pct"), _sql_rows(src, sql))


CITIES_PER_COUNTRY = 3
TOP_CITIES_SQL = """WITH cities AS (
  SELECT {country} AS country, {city} AS city, count(*) AS users
  FROM delta.`{silver}`
  GROUP BY 1, 2
), ranked AS (
  SELECT country, city, users,
         sum(users) OVER (PARTITION BY country) AS country_users,
         row_number() OVER (PARTITION BY country ORDER BY users DESC, city) AS city_rank
  FROM cities
), top_countries AS (
  SELECT country FROM ranked WHERE city_rank = 1 ORDER BY country_users DESC, country LIMIT {top}
)
SELECT r.country, r.country_users, r.city, r.users,
       round(100 * r.users / r.country_users, 2) AS share_of_country_pct
FROM ranked r JOIN top_countries t ON r.country = t.country
WHERE r.city_rank <= {cities}
ORDER BY r.country_users DESC, r.country, r.city_rank"""


def top_cities(src: Sources) -> Result:
    sql = TOP_CITIES_SQL.format(
        country=_label("country"),
        city=_label("city"),
        silver=_table(src, "silver_users"),
        top=int(src.top),
        cities=CITIES_PER_COUNTRY,
    )
    columns = ("country", "country_users", "city", "users", "share_of_country_pct")
    return Result(sql, columns, _sql_rows(src, sql))


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
    for day in sorted(_days(src)):
        for hour in range(24):
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
            if start > now:
                break
            users = int(
                src.cassandra.execute(statement, (day, start, start + dt.timedelta(hours=1))).one()[0]
            )
            if users:
                rows.append({"hour": _hour(start), "new_users": users})
    days = ", ".join(d.isoformat() for d in _days(src))
    query = f"{cql}\n-- run once per UTC hour (up to now) of each day partition: {days}"
    return Result(query, ("hour", "new_users"), rows)


# --- Delta (Spark SQL) ------------------------------------------------------------------------

# Users in a Kafka record: the size of its `results` array; 0 for a record that does not parse
# (size(null) is -1, or null under ANSI: greatest() makes both 0). Bronze and the quarantine
# are read over the same UTC days as Cassandra (--days), not their whole history: their files
# are appended in time order, so Delta skips the older ones by their timestamp statistics and
# the cost follows the volume of those days, not of everything ever received.
BRONZE_VOLUME_SQL = """SELECT date_format(date_trunc('HOUR', timestamp), 'yyyy-MM-dd HH:00') AS hour,
       count(*) AS records,
       CAST(sum(greatest(size(from_json(CAST(value AS STRING), 'results ARRAY<STRING>').results), 0))
            AS BIGINT) AS users,
       CAST(sum(length(value)) AS BIGINT) AS bytes
FROM delta.`{bronze}`
WHERE timestamp >= TIMESTAMP '{since}'
GROUP BY 1
ORDER BY 1"""

QUARANTINE_RATE_SQL = """WITH checked AS (
  SELECT date_format(date_trunc('HOUR', timestamp), 'yyyy-MM-dd HH:00') AS hour,
         CAST(sum(greatest(size(from_json(CAST(value AS STRING), 'results ARRAY<STRING>').results), 0))
              AS BIGINT) AS users_in
  FROM delta.`{bronze}`
  WHERE timestamp >= TIMESTAMP '{since}'
  GROUP BY 1
), rejected AS (
  SELECT date_format(date_trunc('HOUR', kafka_timestamp), 'yyyy-MM-dd HH:00') AS hour,
         reason,
         count(*) AS rows
  FROM delta.`{quarantine}` LATERAL VIEW explode(reasons) r AS reason
  WHERE kafka_timestamp >= TIMESTAMP '{since}'
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


def _since(src: Sources) -> str:
    """The first instant of the oldest UTC day read (the window of the bronze analyses)."""
    return f"{min(_days(src)).isoformat()} 00:00:00"


def bronze_volume_by_hour(src: Sources) -> Result:
    sql = BRONZE_VOLUME_SQL.format(bronze=_table(src, "bronze"), since=_since(src))
    return Result(sql, ("hour", "records", "users", "bytes"), _sql_rows(src, sql))


def quarantine_rate_by_reason(src: Sources) -> Result:
    sql = QUARANTINE_RATE_SQL.format(
        bronze=_table(src, "bronze"), quarantine=_table(src, "quarantine"), since=_since(src)
    )
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
        "delta",
        age_by_country,
        chart=("country", "median_age"),
    ),
    Analysis(
        "age_by_gender",
        "Age distribution per gender",
        "Do the age profiles of women and men differ?",
        "A gap between the genders' ages changes who a campaign or product should target.",
        "delta",
        age_by_gender,
        chart=("gender", "median_age"),
    ),
    Analysis(
        "gender_by_nationality",
        "Gender ratio by nationality",
        "Which nationalities are the most unbalanced between women and men?",
        "An unbalanced sample skews every per-nationality figure; it is also a check of the source.",
        "delta",
        gender_by_nationality,
        chart=("nat", "female_pct"),
    ),
    Analysis(
        "registration_cohorts",
        "Registration cohorts",
        "How many users registered each year, and how old were they then?",
        "Cohorts show the growth of the user base and whether it recruits younger or older people over time.",
        "delta",
        registration_cohorts,
        chart=("registration_year", "users"),
    ),
    Analysis(
        "email_domains",
        "Share of users per email domain",
        "Which email providers do users use?",
        "Deliverability and anti-spam depend on the providers; one dominant domain is a data-source smell.",
        "delta",
        email_domains,
        chart=("email_domain", "share_pct"),
    ),
    Analysis(
        "top_cities",
        "Top cities of the top countries",
        "Within the countries with most users, which cities concentrate them?",
        "Where to open an office, place servers or run local events.",
        "delta",
        top_cities,
        chart=("city", "users"),
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
        "the hours with new users, in time order",
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


def _run_cassandra(settings: Settings, src: Sources, names: Sequence[str] | None) -> list[Outcome]:
    c = settings.cassandra
    with cassandra_session(c, c.reader) as cassandra:
        return run_analyses(
            _selected(names, "cassandra"), replace(src, cassandra=cassandra, keyspace=c.keyspace)
        )


def lake_tables(lake_dir: Path) -> dict[str, str]:
    return {name: str(lake_dir / name) for name in LAKE_TABLES}


def _run_delta_subprocess(names: Sequence[str] | None, src: Sources) -> list[Outcome]:
    """Run the Delta analyses under scripts/spark-submit.sh (pinned jars), read back their JSON."""
    with tempfile.TemporaryDirectory(prefix="insights-") as tmp:
        out = Path(tmp) / "delta.json"
        cmd = [
            str(ROOT / "scripts" / "spark-submit.sh"),
            str(ROOT / "jobs" / "insights.py"),
            "--delta-json",
            str(out),
            "--top",
            str(src.top),
            "--days",
            str(src.days),
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


def warm_up(spark: SparkSession, tables: Mapping[str, str]) -> float:
    """Read one row of each lake table, so a fresh JVM's first Delta and Parquet reads (class
    loading, JIT, the tables' logs: 20-30 s on this machine) are not charged to the first
    analysis. Returns the seconds it took."""
    started = time.monotonic()
    for path in tables.values():
        if DeltaTable.isDeltaTable(spark, path):
            spark.read.format("delta").load(path).limit(1).collect()
    return time.monotonic() - started


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
            days=args.days,
            top=args.top,
            versions_ago=args.versions_ago,
            as_of_hours=args.as_of_hours,
        )
        log.info("Spark warm-up (one row of each lake table): %.1f s", warm_up(spark, src.tables))
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
        "--stores", default=",".join(STORES), help="comma-separated: cassandra,delta (default: both)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="report folder (default reports/)")
    parser.add_argument(
        "--days",
        type=int,
        default=2,
        help="UTC days read: Cassandra day partitions, the bronze and quarantine window (default 2)",
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
    if args.days < 1:
        parser.error("--days must be at least 1")
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
