"""Bronze Kafka rows -> one row per user -> enriched users: pure DataFrame -> DataFrame.

Nothing here reads a clock: the event time is the producer's `meta.fetched_at` (stamped
once per API fetch, so a replay of bronze gives the same rows and the same keys), and
the processing time is a literal the caller passes in. Unparseable messages are kept
and flagged, never dropped: quality.py turns them into quarantine records.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.core.pseudonymise import email_pseudonym_col, phone_pseudonym_col
from jobs.core.schema import CORRUPT_FIELD, RAW_ENVELOPE_SCHEMA, RAW_USER_SCHEMA

logger = logging.getLogger(__name__)

Transformation = Callable[[DataFrame], DataFrame]

# ISO-8601 with a zone, as the API (dob, registered) and the producer (fetched_at) write it.
# Spark's cast alone would also take a date without time or zone and read it in the session
# time zone; the pattern keeps the instant unambiguous.
_ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_MICROS_PER_DAY = 86_400_000_000
# A UTF-16 surrogate escaped alone in a user's JSON (`\uD800` without its low half, or a low
# half without its high one): valid JSON syntax, but no character. Read into a string it
# would become `?` in every store, silently; it is invalid encoding, as bytes that are not
# UTF-8 are. The JSON parser writes each user's text back with such escapes, so the pattern
# reads it there: a `\u` whose backslash is itself escaped is no escape (`\\uD800` is a
# backslash, then the text "uD800"), and a pair (`\uD83D\uDE00`, an emoji) is a character.
_LONE_SURROGATE = (
    r"(?i)(?<!\\)(?:\\\\)*"
    r"(?:\\uD[89AB][0-9A-F]{2}(?!\\uD[C-F][0-9A-F]{2})|(?<!\\uD[89AB][0-9A-F]{2})\\uD[C-F][0-9A-F]{2})"
)

# What a text in brackets is read as to count its values (see parse_messages).
_ONE_VALUE = T.ArrayType(T.StructType([]))

# The enriched user, in this order: no raw email, phone, cell, national id, street or
# coordinates (those stay in bronze only); contacts only as keyed pseudonyms.
ENRICHED_COLUMNS: tuple[str, ...] = (
    "user_id",
    "ingestion_time",
    "batch_id",
    "title",
    "first_name",
    "last_name",
    "full_name",
    "gender",
    "age",
    "date_of_birth",
    "birth_year",
    "country",
    "nat",
    "city",
    "state",
    "postcode",
    "registered_date",
    "email_domain",
    "email_pseudo",
    "phone_pseudo",
    "cell_pseudo",
    "processed_time",
    "source",
    "producer_id",
    "seq",
    "topic",
    "partition",
    "offset",
    "user_index",
)


def iso_instant(text: Column) -> Column:
    """An ISO-8601 instant with zone as a timestamp; null when missing or not of that form."""
    return F.when(text.rlike(_ISO_INSTANT), text.cast("timestamp"))


def utc_date(ts: Column) -> Column:
    """The UTC calendar date of a timestamp, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_micros(ts) / _MICROS_PER_DAY).cast("int"))


def literal_time(value: dt.datetime) -> Column:
    """A timestamp literal from an aware datetime (a naive one would depend on the host zone)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("processed_time must be timezone-aware (e.g. datetime.now(UTC))")
    micros = (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    return F.timestamp_micros(F.lit(micros))


def parse_messages(bronze: DataFrame) -> DataFrame:
    """Kafka rows -> one row per message with its envelope parsed and an `unparseable` flag.

    Users stay JSON texts here (results: array<string>), so a malformed user fails alone.
    A value that is not a JSON object of the envelope's shape, or is null (tombstone),
    is flagged, not dropped. `invalid_encoding` flags a value that is not valid UTF-8 (the
    parse read each bad byte sequence as U+FFFD): decoding it strictly gives other bytes.
    """
    text = F.col("value").cast("string")
    envelope = F.from_json(text, RAW_ENVELOPE_SCHEMA)
    # Spark's JSON parser reads the first value of a text and ignores what follows it, so
    # `{...}garbage`, or two envelopes back to back, would pass as their first envelope (the
    # second one's users lost without a trace). In brackets, the text is an array of exactly
    # one value, or not valid JSON (null). Read with the same parser and options, as objects
    # of no field: a scan, no value built.
    single = F.size(F.from_json(F.concat(F.lit("["), text, F.lit("]")), _ONE_VALUE)) == 1
    return (
        bronze.select(
            "topic",
            "partition",
            "offset",
            F.col("timestamp").alias("kafka_timestamp"),
            F.col("key").cast("string").alias("kafka_key"),
            "value",
            envelope.alias("envelope"),
            F.coalesce(F.decode("value", "UTF-8") != F.col("value").cast("string"), F.lit(False)).alias(
                "invalid_encoding"
            ),
        )
        .withColumn(
            "unparseable",
            F.col("envelope").isNull()
            | F.col(f"envelope.{CORRUPT_FIELD}").isNotNull()
            | ~F.coalesce(single, F.lit(False)),
        )
        .select(
            "topic",
            "partition",
            "offset",
            "kafka_timestamp",
            "kafka_key",
            "value",
            F.when(~F.col("unparseable"), F.col("envelope.meta")).alias("meta"),
            F.when(~F.col("unparseable"), F.col("envelope.info")).alias("info"),
            F.when(~F.col("unparseable"), F.col("envelope.results")).alias("results"),
            "unparseable",
            "invalid_encoding",
        )
    )


def explode_users(messages: DataFrame) -> DataFrame:
    """One row per user, keeping the message's lineage; a message without users keeps one row.

    `position` is the user's place in this message, `user_index` its place in the API
    response (meta.first_index + position, so a response split over messages keeps its
    numbering). Rows of a message with no user (unparseable, no or empty results) have
    null position, user_index and user, and carry the raw Kafka value for the restricted
    quarantine; user rows do not repeat it.

    A message that is not valid UTF-8 also keeps a row of its own with its raw value, and
    `invalid_encoding` marks it and those of its users whose JSON, or whose message's meta,
    holds a U+FFFD (where the bad bytes were read).
    """
    # Whatever depends on the whole message (its size, its raw bytes when it has no user)
    # is computed before the explode: carried into every exploded row, the results array
    # and the raw value would make memory grow with the square of a message's size.
    has_users = F.coalesce(F.size("results"), F.lit(0)) > 0
    # A message that is not UTF-8 gets one more element after its users: its raw value as text
    # (a binary -> string cast keeps every byte), which explodes into the message's own row;
    # so its bytes are kept once, never copied into each user row.
    elements = F.when(
        F.col("invalid_encoding"), F.concat("results", F.array(F.col("value").cast("string")))
    ).otherwise(F.col("results"))
    # Two selects, on purpose: Spark evaluates the other expressions of a select that holds a
    # generator *after* the generator, so computed there they would carry `results` and
    # `value` into every exploded row (seen: OOM on 5000-user messages at a 1.5 GB heap).
    lineage = (
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "kafka_key",
        "message_value",
        "unparseable",
        "invalid_encoding",
        "meta",
        "info",
        "results_count",
    )
    exploded = messages.select(
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "kafka_key",
        F.when(~has_users, F.col("value")).alias("message_value"),
        "unparseable",
        "invalid_encoding",
        "meta",
        "info",
        F.when(F.col("results").isNotNull(), F.size("results")).alias("results_count"),
        elements.alias("elements"),
    ).select(*lineage, F.posexplode_outer("elements").alias("element", "element_json"))
    is_user = F.col("element") < F.col("results_count")
    position = F.when(is_user, F.col("element"))
    user_json = F.when(is_user, F.col("element_json"))
    replacement = "\ufffd"
    user = F.from_json(user_json, RAW_USER_SCHEMA)
    return exploded.select(
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "kafka_key",
        F.when(
            position.isNull(), F.coalesce(F.col("message_value"), F.col("element_json").cast("binary"))
        ).alias("raw_value"),
        "unparseable",
        (
            (
                F.col("invalid_encoding")
                & (
                    position.isNull()
                    | F.coalesce(
                        user_json.contains(replacement) | F.to_json("meta").contains(replacement),
                        F.lit(False),
                    )
                )
            )
            # The cheap byte search first: the pattern runs only on a user with an escape.
            | F.coalesce(user_json.contains("\\u") & user_json.rlike(_LONE_SURROGATE), F.lit(False))
        ).alias("invalid_encoding"),
        "meta",
        "info",
        "results_count",
        F.col("meta.batch_id").alias("batch_id"),
        iso_instant(F.col("meta.fetched_at")).alias("ingestion_time"),
        position.alias("position"),
        (F.coalesce(F.col("meta.first_index"), F.lit(0)) + position).alias("user_index"),
        user_json.alias("user_json"),
        user.alias("user"),
    ).withColumn(
        "user_unparseable",
        F.col("position").isNotNull() & (F.col("user").isNull() | F.col(f"user.{CORRUPT_FIELD}").isNotNull()),
    )


def users_from_bronze(bronze: DataFrame) -> DataFrame:
    """parse_messages then explode_users: the input of quality.with_reasons."""
    return bronze.transform(parse_messages).transform(explode_users)


def enrich_users(
    key: bytes, key_version: int, processed_time: dt.datetime | None, keep: tuple[str, ...] = ()
) -> Transformation:
    """Factory: user rows (from explode_users, usually only the valid ones) -> ENRICHED_COLUMNS
    (then the columns named in `keep`).

    The pseudonym key and version come from settings; processed_time is given by the
    caller so the result depends on the input alone (e.g. the micro-batch's planned time,
    the same on a rerun). None leaves the column out, for with_processed_time to add later:
    Spark compiles a timestamp literal into the generated code, so a heavy stage that holds
    one is compiled again for every batch (docs/PERFORMANCE.md, code generation).
    """
    processed = [] if processed_time is None else [literal_time(processed_time).alias("processed_time")]

    def transform(users: DataFrame) -> DataFrame:
        u = F.col("user")
        email = u["email"]
        dob = utc_date(iso_instant(u["dob"]["date"]))
        return users.select(
            u["login"]["uuid"].alias("user_id"),
            F.col("ingestion_time"),
            F.col("batch_id"),
            u["name"]["title"].alias("title"),
            u["name"]["first"].alias("first_name"),
            u["name"]["last"].alias("last_name"),
            F.concat_ws(" ", u["name"]["first"], u["name"]["last"]).alias("full_name"),
            u["gender"].alias("gender"),
            u["dob"]["age"].alias("age"),
            dob.alias("date_of_birth"),
            F.year(dob).alias("birth_year"),
            u["location"]["country"].alias("country"),
            u["nat"].alias("nat"),
            u["location"]["city"].alias("city"),
            u["location"]["state"].alias("state"),
            u["location"]["postcode"].alias("postcode"),
            utc_date(iso_instant(u["registered"]["date"])).alias("registered_date"),
            F.when(email.contains("@"), F.lower(F.substring_index(F.trim(email), "@", -1))).alias(
                "email_domain"
            ),
            email_pseudonym_col(email, key, key_version).alias("email_pseudo"),
            phone_pseudonym_col(u["phone"], key, key_version).alias("phone_pseudo"),
            phone_pseudonym_col(u["cell"], key, key_version).alias("cell_pseudo"),
            *processed,
            F.col("meta.source").alias("source"),
            F.col("meta.producer_id").alias("producer_id"),
            F.col("meta.seq").alias("seq"),
            "topic",
            "partition",
            "offset",
            "user_index",
            *keep,
        )

    return transform


def with_processed_time(processed_time: dt.datetime) -> Transformation:
    """Factory: rows enriched without a processed time (enrich_users(..., None)) -> the same
    rows with it, in its place among ENRICHED_COLUMNS (other columns follow, in their order).

    A cheap projection meant to come after the heavy stage (a cache, a shuffle): the
    literal's code is compiled for each batch, the stage before it only once.
    """
    stamp = literal_time(processed_time).alias("processed_time")

    before = ENRICHED_COLUMNS[: ENRICHED_COLUMNS.index("processed_time")]

    def transform(users: DataFrame) -> DataFrame:
        head = [c for c in users.columns if c in before]
        return users.select(*head, stamp, *(c for c in users.columns if c not in before))

    return transform
