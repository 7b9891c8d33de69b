"""The Spark HMAC and the Python pseudonym equal Python's hmac module, byte for byte."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.core import pseudonymise as P

KEYS = [
    bytes(range(16)),  # the shortest key settings accept
    bytes(range(64)),  # exactly one block
    bytes(range(100)),  # longer than a block: hashed first (RFC 2104)
]

FIXED_TEXTS = [
    "",
    "a",
    "kathy.harvey@example.com",
    "Zoë.Ünal@exämple.com",
    "نازنین.محمدخان@example.com",
    "Пістина",
    "अर्जुन",
    "ΟΔΥΣΣΕΑΣ@example.gr",
    "İSTANBUL@Örnek.com.tr",
    "DIŞ.İŞLER@example.com",
    "emoji 🙂 and 漢字",
    "x" * 300,
    "line\nbreak\ttab",
]


def _random_texts(count: int) -> list[str]:
    rng = random.Random(20261127)
    alphabet = "abcXYZ019 .@+-_()\téèÜßçñøåПрівітЖابپتثجαβγΣσςİIı漢字かな🙂🚀"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(count)]


TEXTS = FIXED_TEXTS + _random_texts(200)


def _reference(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("key", KEYS, ids=["16B", "64B", "100B"])
def test_python_pseudonym_equals_hmac_module(key: bytes) -> None:
    got = [P.pseudonym(t, key, 3) for t in TEXTS]
    assert got == [f"v3:{_reference(key, t)}" for t in TEXTS]


def test_spark_hmac_equals_hmac_module(spark: SparkSession) -> None:
    df = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], "i int, t string")
    columns = [P.hmac_sha256_hex_col(F.col("t"), key).alias(f"k{n}") for n, key in enumerate(KEYS)]
    rows = df.select("i", *columns).orderBy("i").collect()
    got = [tuple(r) for r in rows]
    expected = [(i, *[_reference(key, t) for key in KEYS]) for i, t in enumerate(TEXTS)]
    assert got == expected


def test_null_stays_null(spark: SparkSession) -> None:
    key = KEYS[0]
    row = spark.createDataFrame([(None,)], "t string").select(
        P.hmac_sha256_hex_col(F.col("t"), key).alias("h"),
        P.email_pseudonym_col(F.col("t"), key, 1).alias("e"),
        P.phone_pseudonym_col(F.col("t"), key, 1).alias("p"),
    )
    assert [r.asDict() for r in row.collect()] == [{"h": None, "e": None, "p": None}]
    assert P.pseudonym(None, key, 1) is None
    assert P.email_pseudonym(None, key, 1) is None
    assert P.phone_pseudonym(None, key, 1) is None


EMAILS = [
    ("kathy.harvey@example.com", "kathy.harvey@example.com"),
    ("  Kathy.Harvey@Example.COM\t", "kathy.harvey@example.com"),
    ("\nZOË@EXÄMPLE.COM ", "zoë@exämple.com"),
    ("ΟΔΟΣ@EXAMPLE.GR", "οδοσ@example.gr"),
    ("İZMİR@EXAMPLE.COM", "i̇zmi̇r@example.com"),
    ("   ", None),
    ("", None),
]

PHONES = [
    ("(096) Q44-4459", "096444459"),
    ("+41 79 734 17 12", "+41797341712"),
    (" +1 (370) 684-2209 ", "+13706842209"),
    ("016977 54482", "01697754482"),
    ("0+1", "01"),
    ("no digits", None),
    ("", None),
]


def test_normalisation_rules() -> None:
    assert [P.normalise_email(raw) for raw, _ in EMAILS] == [norm for _, norm in EMAILS]
    assert [P.normalise_phone(raw) for raw, _ in PHONES] == [norm for _, norm in PHONES]


def test_spark_and_python_pseudonyms_agree_after_normalisation(spark: SparkSession) -> None:
    key, version = KEYS[1], 2
    emails = [raw for raw, _ in EMAILS] + TEXTS
    phones = [raw for raw, _ in PHONES] + TEXTS
    df = spark.createDataFrame(
        [(i, e, p) for i, (e, p) in enumerate(zip(emails, phones, strict=False))], "i int, e string, p string"
    )
    rows = (
        df.select(
            "i",
            P.email_pseudonym_col(F.col("e"), key, version).alias("e"),
            P.phone_pseudonym_col(F.col("p"), key, version).alias("p"),
        )
        .orderBy("i")
        .collect()
    )

    def expected_email(raw: str) -> str | None:
        # Independent of the code under test: str.strip/lower, final sigma folded to sigma.
        norm = raw.strip(" \t\n\x0b\f\r").lower().replace("ς", "σ")
        return f"v2:{_reference(key, norm)}" if norm else None

    def expected_phone(raw: str) -> str | None:
        trimmed = raw.strip(" \t\n\x0b\f\r")
        digits = "".join(c for c in trimmed if c in "0123456789")
        if not digits:
            return None
        return f"v2:{_reference(key, ('+' if trimmed.startswith('+') else '') + digits)}"

    assert [tuple(r) for r in rows] == [
        (i, expected_email(e), expected_phone(p))
        for i, (e, p) in enumerate(zip(emails, phones, strict=False))
    ]
    assert [P.email_pseudonym(e, key, version) for e in emails] == [expected_email(e) for e in emails]
    assert [P.phone_pseudonym(p, key, version) for p in phones] == [expected_phone(p) for p in phones]


def test_key_and_version_are_validated() -> None:
    with pytest.raises(ValueError, match="empty"):
        P.hmac_pads(b"")
    with pytest.raises(ValueError, match="version"):
        P.pseudonym("x", KEYS[0], 0)
