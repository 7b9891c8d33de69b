"""Explicit schemas of what enters the job, so nothing is inferred from data.

Inference would change a column's type with the batch it saw first (the API sends
`location.postcode` as a number for most nationalities and as a string for CA, GB
and NO); every type here is chosen once, for all nationalities.
"""

from __future__ import annotations

import logging

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

logger = logging.getLogger(__name__)

# The nationalities the Random User API 1.4 generates (its `nat` parameter).
NATIONALITIES: tuple[str, ...] = (
    "AU", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE",
    "IN", "IR", "MX", "NL", "NO", "NZ", "RS", "TR", "UA", "US",
)  # fmt: skip

# Spark fills this field with the raw text when a JSON value does not fit the schema.
CORRUPT_FIELD = "_corrupt_record"


def _struct(*fields: tuple[str, object]) -> StructType:
    return StructType([StructField(name, dtype, True) for name, dtype in fields])  # type: ignore[arg-type]


# A date as the API sends it (ISO-8601 UTC string) and the age counted on the day of the request.
_DATED = _struct(("date", StringType()), ("age", IntegerType()))

# One API 1.4 user. login.password/salt/md5/sha1/sha256 are left out on purpose: the producer
# strips them, and leaving them out of the schema drops them even if a message still has them.
# A StringType field takes any JSON value (a number becomes its text), hence postcode is a string.
USER_SCHEMA = _struct(
    ("gender", StringType()),
    ("name", _struct(("title", StringType()), ("first", StringType()), ("last", StringType()))),
    (
        "location",
        _struct(
            ("street", _struct(("number", IntegerType()), ("name", StringType()))),
            ("city", StringType()),
            ("state", StringType()),
            ("country", StringType()),
            ("postcode", StringType()),
            ("coordinates", _struct(("latitude", StringType()), ("longitude", StringType()))),
            ("timezone", _struct(("offset", StringType()), ("description", StringType()))),
        ),
    ),
    ("email", StringType()),
    ("login", _struct(("uuid", StringType()), ("username", StringType()))),
    ("dob", _DATED),
    ("registered", _DATED),
    ("phone", StringType()),
    ("cell", StringType()),
    ("id", _struct(("name", StringType()), ("value", StringType()))),
    ("picture", _struct(("large", StringType()), ("medium", StringType()), ("thumbnail", StringType()))),
    ("nat", StringType()),
)


def _string_fields(schema: StructType, prefix: str = "") -> tuple[str, ...]:
    paths: list[str] = []
    for field in schema.fields:
        if isinstance(field.dataType, StructType):
            paths.extend(_string_fields(field.dataType, f"{prefix}{field.name}."))
        elif isinstance(field.dataType, StringType):
            paths.append(prefix + field.name)
    return tuple(paths)


# Every user field read as a string (dotted paths): the API sends each as a JSON string or
# number, never an object or array, which a StringType would silently take as its JSON text.
USER_STRING_FIELDS: tuple[str, ...] = _string_fields(USER_SCHEMA)

# The producer's stamp on every message: which fetch, when, and which slice of it.
META_SCHEMA = _struct(
    ("batch_id", StringType()),
    ("producer_id", StringType()),
    ("seq", LongType()),
    ("fetched_at", StringType()),
    ("source", StringType()),
    ("part", IntegerType()),
    ("parts", IntegerType()),
    ("first_index", IntegerType()),
)

INFO_SCHEMA = _struct(
    ("seed", StringType()),
    ("results", IntegerType()),
    ("page", IntegerType()),
    ("version", StringType()),
)

# What the job parses first: each user kept as its own JSON text, so one malformed user is
# quarantined alone instead of failing the whole message. The corrupt-record field marks
# a value that is not a JSON object of this shape.
RAW_ENVELOPE_SCHEMA = _struct(
    ("meta", META_SCHEMA),
    ("info", INFO_SCHEMA),
    ("results", ArrayType(StringType())),
    (CORRUPT_FIELD, StringType()),
)

# One user parsed from its own JSON text, with the same corrupt-record marker.
RAW_USER_SCHEMA = StructType([*USER_SCHEMA.fields, StructField(CORRUPT_FIELD, StringType(), True)])

# The Kafka source's rows, as Spark's Kafka source gives them (includeHeaders=true).
BRONZE_SCHEMA = _struct(
    ("key", BinaryType()),
    ("value", BinaryType()),
    ("topic", StringType()),
    ("partition", IntegerType()),
    ("offset", LongType()),
    ("timestamp", TimestampType()),
    ("timestampType", IntegerType()),
    ("headers", ArrayType(_struct(("key", StringType()), ("value", BinaryType())))),
)
