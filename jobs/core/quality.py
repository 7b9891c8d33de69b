"""Data-quality rules as data, and the split of user rows into valid and quarantined.

Each rule is a named check whose Column is true when a row FAILS it, so the rules can be
listed, documented and counted without reading code. A row's `reasons` lists every rule
it fails (empty = valid). Age is judged at the producer's fetch time, never at the clock
of the job, so a replay of bronze judges every record the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.core.pseudonymise import email_pseudonym_col, phone_pseudonym_col, pseudonym_col
from jobs.core.schema import NATIONALITIES, USER_STRING_FIELDS
from jobs.core.transform import Transformation, iso_instant, literal_time, utc_date

logger = logging.getLogger(__name__)

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# One '@', something before it, a dotted domain after it, no spaces: what a mail can reach.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
MIN_AGE, MAX_AGE = 0, 120
# No text of a user may be longer than this (characters).
MAX_FIELD_CHARS = 1_000
# The API's `gender` values (its `gender` parameter takes the same two).
GENDERS: tuple[str, ...] = ("male", "female")
# The fields whose share of present values is reported per batch.
KEY_FIELDS: tuple[str, ...] = ("user_id", "email", "country", "age", "nat")


@dataclass(frozen=True)
class QualityRule:
    """A named check: `fails` is true for a row that breaks it."""

    reason: str
    description: str
    fails: Column


@dataclass(frozen=True)
class _Rule:
    """A rule's declaration; its Column is built on demand (a Column needs a SparkSession).

    `per_batch`: the rule compares rows with each other (a window over the batch), so it is
    checked by with_batch_reasons, after the rules of one row (with_row_reasons): those
    can run inside a streaming query's own plan, a window cannot.
    """

    reason: str
    description: str
    fails: Callable[[], Column]
    per_batch: bool = False


def _blank(text: Column) -> Column:
    return text.isNull() | (F.trim(text) == "")


def _full_years(born: Column, on: Column) -> Column:
    """Completed years between two dates (a birthday counts from its day on)."""
    before_birthday = (F.month(on) < F.month(born)) | (
        (F.month(on) == F.month(born)) & (F.dayofmonth(on) < F.dayofmonth(born))
    )
    return F.year(on) - F.year(born) - F.when(before_birthday, 1).otherwise(0)


def _is_user() -> Column:
    return F.col("position").isNotNull() & ~F.col("user_unparseable")


def _uuid() -> Column:
    return F.col("user.login.uuid")


def _valid_uuid() -> Column:
    return _uuid().rlike(UUID_PATTERN)


def _instant(field: str) -> Column:
    """An API date (`dob` or `registered`) as a timestamp; null when missing or not ISO-8601."""
    return iso_instant(F.col(f"user.{field}.date"))


def _age_inconsistent(field: str) -> Column:
    # The API counts full years on the day of the request, in its own server's time zone and
    # at the instant it answers; fetched_at is stamped by the producer moments later. Within
    # one day of an anniversary either count is honest, so the age may be the full years at
    # any date from the day before to the day after fetched_at (UTC); anything else is wrong.
    age = F.col(f"user.{field}.age")
    at = utc_date(F.col("ingestion_time"))
    since = utc_date(_instant(field))
    return (
        _is_user()
        & age.isNotNull()
        & F.col("ingestion_time").isNotNull()
        & (
            since.isNull()
            | (age < _full_years(since, F.date_sub(at, 1)))
            | (age > _full_years(since, F.date_add(at, 1)))
        )
    )


def _age_out_of_range() -> Column:
    age = F.col("user.dob.age")
    return _is_user() & (age.isNull() | (age < MIN_AGE) | (age > MAX_AGE))


def _date_in_future() -> Column:
    # Against the producer's fetched_at, never the job's clock: a replay judges the same.
    at = F.col("ingestion_time")
    return _is_user() & ((_instant("dob") > at) | (_instant("registered") > at))


def _wrong_type() -> Column:
    # A StringType field takes an object or an array as its JSON text, which begins with { or [.
    # The API sends these fields as strings or numbers only, and none of its texts begins so.
    shaped = [
        F.col(f"user.{path}").startswith("{") | F.col(f"user.{path}").startswith("[")
        for path in USER_STRING_FIELDS
    ]
    return _is_user() & reduce(operator.or_, shaped)


# The uuid of a user row that takes part in the per-batch rules (null for the others):
# added by with_row_reasons, kept through enrichment, dropped by with_batch_reasons.
BATCH_KEY = "batch_key"


def _batch_key() -> Column:
    return F.when(_is_user() & _valid_uuid(), _uuid())


def _oversized_field() -> Column:
    # The API's longest texts are ~64 characters (a SHA-256 in hex); a country or a gender is
    # also a key of the statistics tables (Cassandra refuses keys over 64 KB, failing a batch).
    too_long = [F.length(F.col(f"user.{path}")) > MAX_FIELD_CHARS for path in USER_STRING_FIELDS]
    return _is_user() & F.coalesce(reduce(operator.or_, too_long), F.lit(False))


def _duplicate_uuid_in_batch() -> Column:
    key = F.col(BATCH_KEY)
    first_index = F.min(F.when(key.isNotNull(), F.col("user_index"))).over(
        Window.partitionBy("batch_id", key)
    )
    return key.isNotNull() & (F.col("user_index") > first_index)


_RULES: tuple[_Rule, ...] = (
    _Rule(
        "unparseable_json",
        "the Kafka value, or one user in it, is not JSON of the expected shape",
        lambda: F.col("unparseable") | F.col("user_unparseable"),
    ),
    _Rule(
        "invalid_encoding",
        "the Kafka value is not valid UTF-8: the message itself (its raw bytes kept) and each of "
        "its users whose JSON, or whose message's meta, holds a U+FFFD where bad bytes were read; "
        "and a user whose JSON escapes half a UTF-16 surrogate pair (`\\uD800` alone: no character)",
        lambda: F.col("invalid_encoding"),
    ),
    _Rule(
        "missing_results",
        "the message parsed but has no non-empty `results` array",
        lambda: ~F.col("unparseable") & (F.coalesce(F.col("results_count"), F.lit(0)) == 0),
    ),
    _Rule(
        "invalid_meta",
        "the message's meta lacks a batch_id or an ISO-8601 fetched_at (the key of every sink)",
        lambda: ~F.col("unparseable") & (_blank(F.col("batch_id")) | F.col("ingestion_time").isNull()),
    ),
    _Rule(
        "wrong_type",
        "a field the API sends as a string or number holds a JSON object or array",
        _wrong_type,
    ),
    _Rule(
        "oversized_field",
        f"a text field is longer than {MAX_FIELD_CHARS} characters (the API's are under 100)",
        _oversized_field,
    ),
    _Rule("missing_uuid", "login.uuid is missing or blank", lambda: _is_user() & _blank(_uuid())),
    _Rule(
        "malformed_uuid",
        "login.uuid is not a lowercase canonical UUID (it is the key of every sink)",
        lambda: _is_user() & ~_blank(_uuid()) & ~_valid_uuid(),
    ),
    _Rule(
        "missing_name",
        "name.first or name.last is missing or blank",
        lambda: _is_user() & (_blank(F.col("user.name.first")) | _blank(F.col("user.name.last"))),
    ),
    _Rule(
        "unknown_gender",
        f"gender is not one of the API's values ({', '.join(GENDERS)})",
        lambda: _is_user() & (F.col("user.gender").isNull() | ~F.col("user.gender").isin(*GENDERS)),
    ),
    _Rule("age_out_of_range", f"dob.age is missing or outside {MIN_AGE}..{MAX_AGE}", _age_out_of_range),
    _Rule(
        "age_inconsistent_with_dob",
        "dob.age is not the full years between dob.date and fetched_at (+-1 day), or dob.date is bad",
        lambda: _age_inconsistent("dob"),
    ),
    _Rule(
        "registered_age_inconsistent",
        "registered.age is missing or not the full years between registered.date and fetched_at "
        "(+-1 day), or registered.date is missing or bad",
        lambda: _age_inconsistent("registered") | (_is_user() & F.col("user.registered.age").isNull()),
    ),
    _Rule(
        "registered_before_birth",
        "registered.date is earlier than dob.date",
        lambda: _is_user() & (_instant("registered") < _instant("dob")),
    ),
    _Rule("date_in_future", "dob.date or registered.date is later than fetched_at", _date_in_future),
    _Rule(
        "empty_country",
        "location.country is missing or blank",
        lambda: _is_user() & _blank(F.col("user.location.country")),
    ),
    _Rule(
        "unknown_nationality",
        "nat is not one of the API's 21 nationality codes",
        lambda: _is_user() & (F.col("user.nat").isNull() | ~F.col("user.nat").isin(*NATIONALITIES)),
    ),
    _Rule(
        "invalid_email",
        "email is missing or not of the form local@domain.tld",
        lambda: (
            _is_user() & (F.col("user.email").isNull() | ~F.trim(F.col("user.email")).rlike(EMAIL_PATTERN))
        ),
    ),
    _Rule(
        "duplicate_uuid_in_batch",
        "the same login.uuid appears earlier in the same API response (meta.batch_id)",
        _duplicate_uuid_in_batch,
        per_batch=True,
    ),
)
# Reasons are listed in rule order: the rules of one row first, then those of the batch.
assert [r.per_batch for r in _RULES] == sorted(r.per_batch for r in _RULES), "per-batch rules last"


def quality_rules() -> tuple[QualityRule, ...]:
    """Every rule, in the order reasons are listed (needs an active SparkSession)."""
    return tuple(QualityRule(rule.reason, rule.description, rule.fails()) for rule in _RULES)


def reason_codes() -> tuple[str, ...]:
    """The reason codes, in rule order (no SparkSession needed): read from the declarations,
    so each is written once."""
    return tuple(rule.reason for rule in _RULES)


def _rules(*, per_batch: bool) -> list[QualityRule]:
    return [QualityRule(r.reason, r.description, r.fails()) for r in _RULES if r.per_batch == per_batch]


def _reasons(rules: list[QualityRule]) -> Column:
    # One [reason] or [] per rule, concatenated: unlike array_compact (a higher-order function),
    # concat compiles to Java with the rules, so their shared parts (dates, fields) run once.
    none = F.array().cast("array<string>")
    return F.concat(*[F.when(rule.fails, F.array(F.lit(rule.reason))).otherwise(none) for rule in rules])


def with_row_reasons(users: DataFrame) -> DataFrame:
    """Add `reasons` for the rules of one row, and BATCH_KEY, to rows from transform.explode_users.

    Row by row only, so it can be part of a streaming query's plan (built once, not per
    batch); with_batch_reasons completes the list.
    """
    return users.select(
        "*", _reasons(_rules(per_batch=False)).alias("reasons"), _batch_key().alias(BATCH_KEY)
    )


def with_batch_reasons(rows: DataFrame) -> DataFrame:
    """Append the reasons of the per-batch rules to `reasons`, and drop BATCH_KEY.

    `rows`: from with_row_reasons (or enriched from them, keeping `reasons`, BATCH_KEY,
    `batch_id` and `user_index`).
    """
    added = _reasons(_rules(per_batch=True))
    return rows.withColumn("reasons", F.concat("reasons", added)).drop(BATCH_KEY)


def with_reasons(users: DataFrame) -> DataFrame:
    """Add `reasons` (array<string>, empty = valid) to rows from transform.explode_users."""
    return with_batch_reasons(with_row_reasons(users))


def valid(checked: DataFrame) -> DataFrame:
    """Rows that passed every rule."""
    return checked.where(F.size("reasons") == 0)


def quarantined(checked: DataFrame) -> DataFrame:
    """Rows that failed at least one rule."""
    return checked.where(F.size("reasons") > 0)


def _anomaly_id() -> Column:
    # Deterministic: a replay writes the same document again instead of a new one.
    where = F.coalesce(F.col("position").cast("string"), F.lit("message"))
    return F.concat_ws("-", F.col("topic"), F.col("partition"), F.col("offset"), where)


def quarantine_documents(key: bytes, key_version: int, processed_time: dt.datetime) -> Transformation:
    """Factory: quarantined rows -> the Mongo `anomalies` documents.

    Contacts and the national id are pseudonymised; street, coordinates, username and
    pictures are left out; a message row (a message that did not parse, has no user, or
    is not UTF-8) is kept only as its SHA-256 and length (its raw bytes go to the
    restricted Delta table, see quarantine_raw).
    """
    processed = literal_time(processed_time)

    def transform(rows: DataFrame) -> DataFrame:
        u = F.col("user")
        record = F.when(
            F.col("position").isNotNull() & u.isNotNull(),
            F.struct(
                u["gender"].alias("gender"),
                u["name"].alias("name"),
                F.struct(
                    u["location"]["city"].alias("city"),
                    u["location"]["state"].alias("state"),
                    u["location"]["country"].alias("country"),
                    u["location"]["postcode"].alias("postcode"),
                ).alias("location"),
                email_pseudonym_col(u["email"], key, key_version).alias("email_pseudo"),
                F.when(
                    u["email"].contains("@"), F.lower(F.substring_index(F.trim(u["email"]), "@", -1))
                ).alias("email_domain"),
                phone_pseudonym_col(u["phone"], key, key_version).alias("phone_pseudo"),
                phone_pseudonym_col(u["cell"], key, key_version).alias("cell_pseudo"),
                u["id"]["name"].alias("id_name"),
                pseudonym_col(F.trim(u["id"]["value"]), key, key_version).alias("id_value_pseudo"),
                u["dob"].alias("dob"),
                u["registered"].alias("registered"),
                u["nat"].alias("nat"),
            ),
        )
        return rows.select(
            _anomaly_id().alias("_id"),
            "topic",
            "partition",
            "offset",
            "position",
            "user_index",
            "batch_id",
            F.col("meta.producer_id").alias("producer_id"),
            F.col("meta.seq").alias("seq"),
            F.col("meta.source").alias("source"),
            "reasons",
            "ingestion_time",
            processed.alias("processed_time"),
            u["login"]["uuid"].alias("user_id"),
            record.alias("record"),
            F.sha2(F.col("raw_value"), 256).alias("raw_sha256"),
            F.length(F.col("raw_value")).alias("raw_bytes"),
        )

    return transform


def quarantine_raw(processed_time: dt.datetime) -> Transformation:
    """Factory: quarantined rows -> the restricted Delta quarantine table, records untouched.

    `raw_json` is the user's own JSON (user rows) or the whole Kafka value as text
    (message rows); `raw_value` keeps a message row's exact bytes (also those of a
    message that is not UTF-8, whose text has U+FFFD where they were bad).
    """
    processed = literal_time(processed_time)

    def transform(rows: DataFrame) -> DataFrame:
        return rows.select(
            _anomaly_id().alias("anomaly_id"),
            "topic",
            "partition",
            "offset",
            "kafka_timestamp",
            "kafka_key",
            "position",
            "user_index",
            "batch_id",
            "reasons",
            "ingestion_time",
            processed.alias("processed_time"),
            F.coalesce(F.col("user_json"), F.col("raw_value").cast("string")).alias("raw_json"),
            "raw_value",
        )

    return transform


def _present(field: str) -> Column:
    column = {
        "user_id": _uuid(),
        "email": F.col("user.email"),
        "country": F.col("user.location.country"),
        "age": F.col("user.dob.age"),
        "nat": F.col("user.nat"),
    }[field]
    parsed = F.col("position").isNotNull() & ~F.col("user_unparseable")
    if field == "age":
        return parsed & column.isNotNull()
    return parsed & ~_blank(column)


def batch_metrics(checked: DataFrame) -> DataFrame:
    """One row of counts for a micro-batch of rows from with_reasons.

    records_in: Kafka records; users_in: user rows; valid / quarantined: rows of each
    kind (a message that did not parse counts once); reasons: rows per reason code, every
    code present (0 when unseen); completeness: share of user rows whose key field is
    present and non-blank, an unparseable user counting as absent (empty map when there
    is no user row); duplicates_in_batch:
    rows flagged duplicate_uuid_in_batch.
    """
    is_user = F.col("position").isNotNull()
    users_in = F.count(F.when(is_user, 1))
    reason_counts = [
        F.count(F.when(F.array_contains("reasons", code), 1)).cast("bigint") for code in reason_codes()
    ]
    shares = [
        (F.count(F.when(is_user & _present(field), 1)) / users_in).cast("double") for field in KEY_FIELDS
    ]
    completeness = F.when(
        users_in > 0,
        F.map_from_arrays(F.array(*[F.lit(f) for f in KEY_FIELDS]), F.array(*shares)),
    ).otherwise(F.create_map().cast("map<string,double>"))
    return checked.agg(
        F.count_distinct("topic", "partition", "offset").cast("bigint").alias("records_in"),
        users_in.cast("bigint").alias("users_in"),
        F.count(F.when(F.size("reasons") == 0, 1)).cast("bigint").alias("valid"),
        F.count(F.when(F.size("reasons") > 0, 1)).cast("bigint").alias("quarantined"),
        F.map_from_arrays(F.array(*[F.lit(c) for c in reason_codes()]), F.array(*reason_counts)).alias(
            "reasons"
        ),
        completeness.alias("completeness"),
        F.count(F.when(F.array_contains("reasons", "duplicate_uuid_in_batch"), 1))
        .cast("bigint")
        .alias("duplicates_in_batch"),
    )
