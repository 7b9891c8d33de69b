"""The analyses that run on the Delta lake (Spark SQL): people over silver, history over bronze,
the quarantine and the versions of gold. `src.spark` is a SparkSession with Delta; this module
itself does not import pyspark."""

from __future__ import annotations

import datetime as dt

from analytics.model import UNKNOWN, Result, Row, Sources


def _table(src: Sources, name: str) -> str:
    """A lake path to quote in Spark SQL (delta.`path`): a backtick would end the quote."""
    path = src.tables[name]
    if "`" in path:
        raise ValueError(f"lake path {path!r} contains a backtick")
    return path


def _sql_rows(src: Sources, sql: str) -> list[Row]:
    return [row.asDict() for row in src.spark.sql(sql).collect()]


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
FROM (SELECT group_key AS country, count_users, avg_age
      FROM delta.`{gold}` WHERE dimension = 'country') AS now
FULL OUTER JOIN (SELECT group_key AS country, count_users, avg_age
      FROM delta.`{gold}` {as_of} WHERE dimension = 'country') AS then
  ON now.country = then.country
ORDER BY new_users DESC, country"""


def _since(src: Sources) -> str:
    """The first instant of the oldest UTC day read (the window of the bronze analyses)."""
    return f"{min(src.utc_days()).isoformat()} 00:00:00"


def bronze_volume_by_hour(src: Sources) -> Result:
    sql = BRONZE_VOLUME_SQL.format(bronze=_table(src, "bronze"), since=_since(src))
    return Result(sql, ("hour", "records", "users", "bytes"), _sql_rows(src, sql))


def quarantine_rate_by_reason(src: Sources) -> Result:
    sql = QUARANTINE_RATE_SQL.format(
        bronze=_table(src, "bronze"), quarantine=_table(src, "quarantine"), since=_since(src)
    )
    return Result(sql, ("hour", "reason", "rows", "users_in", "pct_of_users"), _sql_rows(src, sql))


def gold_history(src: Sources) -> tuple[str, list[tuple[int, dt.datetime]]]:
    """(query, [(version, commit time UTC)] oldest first) of gold (gold_stats)."""
    sql = HISTORY_SQL.format(gold=_table(src, "gold_stats"))
    rows = (
        src.spark.sql(sql)
        .selectExpr("version", "date_format(timestamp, 'yyyy-MM-dd HH:mm:ss.SSS') AS ts")
        .collect()
    )
    history = [
        (int(r.version), dt.datetime.strptime(r.ts, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC))
        for r in rows
    ]
    return sql, sorted(history)


def _time_travel(src: Sources, as_of: str, note: str, history_sql: str) -> Result:
    sql = TIME_TRAVEL_SQL.format(gold=_table(src, "gold_stats"), as_of=as_of)
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
