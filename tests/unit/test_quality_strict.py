"""The stricter rules: bytes that are not UTF-8, dates that contradict each other, JSON of
the wrong shape, gender and names. Each test builds whole Kafka records from the real
fixtures, breaks them by hand, and compares every row's reasons."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs.core import quality, transform
from tests.unit.bronze_rows import (
    PROCESSED,
    TOPIC,
    bronze_df,
    bronze_row,
    encode,
    envelope,
    load_users,
    with_raw_bytes,
)

NOT_UTF8 = b"\xff\xfe"  # never valid in UTF-8
TRUNCATED = "€".encode()[:2]  # a multi-byte sequence cut short


def _pool(fixtures_dir: Path) -> list[dict[str, Any]]:
    _, page1 = load_users(fixtures_dir, "mixed-10.json")
    _, page2 = load_users(fixtures_dir, "mixed-10-page2.json")
    return page1 + page2


def _checked(spark: SparkSession, values: list[bytes | None]) -> DataFrame:
    bronze = bronze_df(spark, [bronze_row(v, offset) for offset, v in enumerate(values)])
    return quality.with_reasons(transform.users_from_bronze(bronze))


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _reasons(df: DataFrame) -> list[tuple[Any, ...]]:
    return [
        tuple(r) for r in df.select("offset", "position", "reasons").orderBy("offset", "position").collect()
    ]


class EncodingBatch:
    """Five Kafka records whose bytes are, or are not, UTF-8."""

    def __init__(self, fixtures_dir: Path) -> None:
        pool = _pool(fixtures_dir)
        users = [copy.deepcopy(u) for u in pool[:3]]
        users[1]["name"]["first"] = "BAD-FIRST"
        users[2]["location"]["city"] = "BAD-CITY"
        genuine = copy.deepcopy(pool[3])
        genuine["name"]["last"] = "Sm\ufffdth"  # a real U+FFFD, sent as valid UTF-8 (EF BF BD)
        self.users = users
        self.meta_user = pool[4]
        self.messages: list[bytes | None] = [
            # Two users with bad bytes: each flagged, and the message keeps its bytes in a row of its own.
            with_raw_bytes(
                with_raw_bytes(encode(envelope(users, batch_id="b-users")), "BAD-FIRST", b"Ann" + NOT_UTF8),
                "BAD-CITY",
                b"Lyon" + TRUNCATED,
            ),
            # Valid UTF-8 holding a U+FFFD: nothing was replaced, nothing to flag.
            encode(envelope([genuine], batch_id="b-genuine")),
            # Bad bytes in meta: its users are flagged too (their lineage and keys are garbled).
            with_raw_bytes(
                encode(envelope([self.meta_user], batch_id="b-meta", source="BAD-SOURCE")),
                "BAD-SOURCE",
                NOT_UTF8,
            ),
            # Bad bytes that also break the JSON.
            b'{"meta": ' + NOT_UTF8 + b"}",
            None,
        ]


@pytest.fixture(scope="module")
def encoding_batch(fixtures_dir: Path) -> EncodingBatch:
    return EncodingBatch(fixtures_dir)


def test_bytes_that_are_not_utf8_are_quarantined(spark: SparkSession, encoding_batch: EncodingBatch) -> None:
    checked = _checked(spark, encoding_batch.messages)
    assert _reasons(checked) == [
        (0, None, ["invalid_encoding"]),
        (0, 0, []),
        (0, 1, ["invalid_encoding"]),
        (0, 2, ["invalid_encoding"]),
        (1, 0, []),
        (2, None, ["invalid_encoding"]),
        (2, 0, ["invalid_encoding"]),
        (3, None, ["unparseable_json", "invalid_encoding"]),
        (4, None, ["unparseable_json"]),
    ]


def test_the_raw_bytes_of_a_message_that_is_not_utf8_are_kept_in_its_own_row(
    spark: SparkSession, encoding_batch: EncodingBatch
) -> None:
    messages = encoding_batch.messages
    rows = (
        quality.quarantined(_checked(spark, messages))
        .transform(quality.quarantine_raw(PROCESSED))
        .select("anomaly_id", "reasons", "raw_json", "raw_value")
        .collect()
    )
    got = {
        r.anomaly_id: (r.reasons, r.raw_json, None if r.raw_value is None else bytes(r.raw_value))
        for r in rows
    }
    first, city = copy.deepcopy(encoding_batch.users[1]), copy.deepcopy(encoding_batch.users[2])
    first["name"]["first"] = "Ann\ufffd\ufffd"  # what the parse read: one U+FFFD per bad byte
    city["location"]["city"] = "Lyon\ufffd"  # a truncated sequence reads as one
    assert got == {
        f"{TOPIC}-0-0-message": (
            ["invalid_encoding"],
            (messages[0] or b"").decode("utf-8", "replace"),
            messages[0],
        ),
        f"{TOPIC}-0-0-1": (["invalid_encoding"], _compact(first), None),
        f"{TOPIC}-0-0-2": (["invalid_encoding"], _compact(city), None),
        f"{TOPIC}-0-2-0": (["invalid_encoding"], _compact(encoding_batch.meta_user), None),
        f"{TOPIC}-0-2-message": (
            ["invalid_encoding"],
            (messages[2] or b"").decode("utf-8", "replace"),
            messages[2],
        ),
        f"{TOPIC}-0-3-message": (
            ["unparseable_json", "invalid_encoding"],
            (messages[3] or b"").decode("utf-8", "replace"),
            messages[3],
        ),
        f"{TOPIC}-0-4-message": (["unparseable_json"], None, None),
    }


def test_half_a_surrogate_pair_is_invalid_encoding(spark: SparkSession, fixtures_dir: Path) -> None:
    """`\ud800` alone is valid JSON but no character: read into a string it becomes `?` in
    every store. Each user holding half a pair is quarantined, alone; a whole pair (escaped or
    as UTF-8 bytes), an escaped backslash before the text "ud800", and the users beside them pass."""
    u = [copy.deepcopy(x) for x in _pool(fixtures_dir)[:10]]
    marks = [f"MARK{i}" for i in range(len(u))]
    for user, mark in zip(u, marks, strict=True):
        user["name"]["first"] = mark
    escapes = {
        "MARK0": rb"\ud800Ann",  # a high half alone
        "MARK1": rb"Ann\udc00",  # a low half alone
        "MARK2": rb"Ann\uD83D",  # a high half at the end of the text (upper-case hex)
        "MARK3": rb"\\\ud800Ann",  # an escaped backslash, then a high half alone
        "MARK4": rb"\ud800\ud800",  # two high halves: the second is no low half
        "MARK5": rb"\ud83d\ude00 Ann",  # a whole pair, escaped: an emoji
        "MARK6": "\U0001f600 Ann".encode(),  # the same emoji as UTF-8 bytes
        "MARK7": rb"\\ud800Ann",  # an escaped backslash, then the text "ud800"
        "MARK8": rb"Ann\u00e9",  # an escape that is no surrogate
    }
    value = encode(envelope(u, batch_id="b-surrogates"))
    for mark, raw in escapes.items():
        value = with_raw_bytes(value, f'"{mark}"', b'"' + raw + b'"')
    checked = _checked(spark, [value])
    assert _reasons(checked) == [
        (0, 0, ["invalid_encoding"]),
        (0, 1, ["invalid_encoding"]),
        (0, 2, ["invalid_encoding"]),
        (0, 3, ["invalid_encoding"]),
        (0, 4, ["invalid_encoding"]),
        (0, 5, []),
        (0, 6, []),
        (0, 7, []),
        (0, 8, []),
        (0, 9, []),
    ]
    firsts = [r.first for r in checked.orderBy("position").select("user.name.first").collect()]
    assert firsts[5:] == ["\U0001f600 Ann", "\U0001f600 Ann", "\\ud800Ann", "Ann\u00e9", "MARK9"]


def test_hostile_json_fails_alone_and_never_stops_the_batch(spark: SparkSession, fixtures_dir: Path) -> None:
    """JSON built to hurt a parser: nesting thousands deep, numbers no type holds, duplicate
    keys. A whole message that cannot be read is quarantined; a user that cannot be read is
    quarantined alone, and the users beside it pass."""
    pool = _pool(fixtures_dir)
    u = [copy.deepcopy(x) for x in pool[:6]]
    u[0]["name"] = json.loads('{"a":' * 900 + "1" + "}" * 900)  # an object 900 deep where a name is
    u[1]["dob"]["age"] = 10**40  # no integer type holds it
    u[2]["location"]["postcode"] = 1e300  # a number where the API sends one: a postcode stays text
    ages = encode(envelope(u, batch_id="b-hostile"))
    ages = with_raw_bytes(ages, '"age": ' + str(u[3]["dob"]["age"]), b'"age": NaN')
    ages = with_raw_bytes(
        ages, '"gender": "' + u[4]["gender"], b'"gender": "x", "gender": "' + u[4]["gender"].encode()
    )
    deep = b'{"results": [' + b"[" * 5_000 + b"]" * 5_000 + b"]}"  # past the parser's depth limit
    infinite = with_raw_bytes(
        encode(envelope([pool[6]], batch_id="b-inf")), '"offset": ', b'"x": 1e400, "offset": '
    )
    checked = _checked(spark, [ages, deep, infinite])
    assert _reasons(checked) == [
        (0, 0, ["missing_name"]),
        (0, 1, ["unparseable_json"]),
        (0, 2, []),
        (0, 3, ["unparseable_json"]),
        (0, 4, []),
        (0, 5, []),
        (1, None, ["unparseable_json"]),
        (2, 0, []),
    ]


def test_dates_that_contradict_each_other(spark: SparkSession, fixtures_dir: Path) -> None:
    """Judged at the producer's fetched_at (2026-11-27T23:40:00.123Z here), never at the job's clock."""
    u = [copy.deepcopy(x) for x in _pool(fixtures_dir)[:14]]
    u[1]["registered"] = {"date": "1987-03-30T19:37:35.320Z", "age": 39}  # dob.date is 1988-03-30
    u[2]["dob"] = {"date": "2026-11-28T10:00:00.000Z", "age": 0}
    u[2]["registered"] = {"date": "2026-11-28T11:00:00.000Z", "age": 0}
    u[3]["registered"] = {"date": "2026-11-27T23:45:00.000Z", "age": 0}
    u[4]["registered"] = {"date": "2026-11-27T23:40:00.123Z", "age": 0}  # exactly fetched_at
    u[5]["registered"]["age"] += 3
    del u[6]["registered"]["age"]
    u[7]["registered"]["date"] = "yesterday"
    del u[8]["registered"]
    # An anniversary the day after fetched_at may be counted either way, not two days after.
    u[9]["registered"] = {"date": "2010-11-28T10:00:00.000Z", "age": 16}
    u[10]["registered"] = {"date": "2010-11-28T10:00:00.000Z", "age": 15}
    u[11]["registered"] = {"date": "2010-11-29T10:00:00.000Z", "age": 16}
    u[12]["dob"] = {"date": "2030-01-01T00:00:00.000Z", "age": 0}  # registered 2018, age counts -4
    checked = _checked(
        spark,
        [
            encode(envelope(u[:13], batch_id="b-dates")),
            # A record fetched in 2001 registered in 2005: in the future at its fetch, whatever today is.
            encode(envelope([u[13]], batch_id="b-2001", fetched_at="2001-01-01T00:00:00.000Z")),
        ],
    )
    assert _reasons(checked) == [
        (0, 0, []),
        (0, 1, ["registered_before_birth"]),
        (0, 2, ["date_in_future"]),
        (0, 3, ["date_in_future"]),
        (0, 4, []),
        (0, 5, ["registered_age_inconsistent"]),
        (0, 6, ["registered_age_inconsistent"]),
        (0, 7, ["registered_age_inconsistent"]),
        (0, 8, ["registered_age_inconsistent"]),
        (0, 9, []),
        (0, 10, []),
        (0, 11, ["registered_age_inconsistent"]),
        (0, 12, ["age_inconsistent_with_dob", "registered_before_birth", "date_in_future"]),
        (1, 0, ["age_inconsistent_with_dob", "registered_age_inconsistent", "date_in_future"]),
    ]


def test_json_of_the_wrong_shape(spark: SparkSession, fixtures_dir: Path) -> None:
    """An object or array where the API sends a string or number is quarantined; the API's own
    variations (postcode number or string, coordinates and offsets as strings, id.value null,
    id.name empty) are not."""
    u = [copy.deepcopy(x) for x in _pool(fixtures_dir)[:12]]
    u[0]["location"]["postcode"] = {"code": 1234}
    u[1]["name"]["first"] = ["Ann"]
    u[2]["email"] = {"address": "ann@example.com"}
    u[3]["location"]["coordinates"]["latitude"] = {"deg": 12.5}
    u[4]["location"]["timezone"]["offset"] = ["+1:00"]
    u[5]["id"]["value"] = {"v": "123"}
    u[6]["login"]["username"] = []
    u[7]["name"] = "Ann Smith"  # a string where the API sends an object
    u[8]["location"]["street"]["number"] = {"n": 1}  # an object where it sends a number
    u[9]["location"]["postcode"] = 1234
    u[10]["location"]["postcode"] = "AB1 2CD"
    u[10]["location"]["timezone"]["offset"] = "-3:30"
    u[11]["id"] = {"name": "", "value": None}
    u[11]["location"]["coordinates"] = {"latitude": "-12.3456", "longitude": "98.7654"}
    checked = _checked(spark, [encode(envelope(u, batch_id="b-shapes"))])
    assert _reasons(checked) == [
        (0, 0, ["wrong_type"]),
        (0, 1, ["wrong_type"]),
        (0, 2, ["wrong_type"]),
        (0, 3, ["wrong_type"]),
        (0, 4, ["wrong_type"]),
        (0, 5, ["wrong_type"]),
        (0, 6, ["wrong_type"]),
        (0, 7, ["unparseable_json"]),
        (0, 8, ["unparseable_json"]),
        (0, 9, []),
        (0, 10, []),
        (0, 11, []),
    ]


def test_oversized_texts(spark: SparkSession, fixtures_dir: Path) -> None:
    """A text over 1,000 characters is quarantined (a 70,000-character country would break the
    statistics' Cassandra key); 1,000 characters, or a long real value, pass."""
    u = [copy.deepcopy(x) for x in _pool(fixtures_dir)[:4]]
    u[0]["location"]["country"] = "X" * 70_000
    u[1]["location"]["timezone"]["description"] = "y" * 1_001
    u[2]["location"]["city"] = "z" * 1_000
    u[3]["name"]["last"] = "Wolfeschlegelsteinhausenbergerdorff-Müller"
    checked = _checked(spark, [encode(envelope(u, batch_id="b-long"))])
    assert _reasons(checked) == [
        (0, 0, ["oversized_field"]),
        (0, 1, ["oversized_field"]),
        (0, 2, []),
        (0, 3, []),
    ]


def test_gender_and_names(spark: SparkSession, fixtures_dir: Path) -> None:
    u = [copy.deepcopy(x) for x in _pool(fixtures_dir)[:10]]
    u[0]["gender"] = "M"
    u[1]["gender"] = "Male"
    del u[2]["gender"]
    u[3]["gender"] = None
    u[4]["name"]["first"] = ""
    u[5]["name"]["last"] = "   "
    del u[6]["name"]["first"]
    del u[7]["name"]
    del u[8]["name"]["title"]  # the title is not required
    checked = _checked(spark, [encode(envelope(u, batch_id="b-names"))])
    assert _reasons(checked) == [
        (0, 0, ["unknown_gender"]),
        (0, 1, ["unknown_gender"]),
        (0, 2, ["unknown_gender"]),
        (0, 3, ["unknown_gender"]),
        (0, 4, ["missing_name"]),
        (0, 5, ["missing_name"]),
        (0, 6, ["missing_name"]),
        (0, 7, ["missing_name"]),
        (0, 8, []),
        (0, 9, []),
    ]
