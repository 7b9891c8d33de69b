"""Bronze rows made from the real API fixtures -> user rows -> enriched users, compared whole."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from ingest import envelope as envelope_module
from jobs.core import quality, transform
from tests.unit.bronze_rows import (
    FETCHED_AT_UTC,
    KAFKA_TIME,
    KEY,
    PROCESSED,
    PROCESSED_UTC,
    TOPIC,
    bronze_df,
    bronze_row,
    encode,
    envelope,
    fixture_bronze,
    load_users,
)
from tests.unit.frames import assert_rows, assert_same_frame

ENRICHED_COLUMNS = [
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
]


def _pseudo(text: str) -> str:
    return "v1:" + hmac.new(KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _phone(raw: str) -> str:
    digits = "".join(c for c in raw if c in "0123456789")
    return _pseudo(("+" if raw.startswith("+") else "") + digits)


def expected_enriched(
    user: dict[str, Any], message: dict[str, Any], offset: int, index: int
) -> dict[str, Any]:
    """The enriched row, worked out from the JSON alone."""
    meta = message["meta"]
    return {
        "user_id": user["login"]["uuid"],
        "ingestion_time": FETCHED_AT_UTC,
        "batch_id": meta["batch_id"],
        "title": user["name"]["title"],
        "first_name": user["name"]["first"],
        "last_name": user["name"]["last"],
        "full_name": f"{user['name']['first']} {user['name']['last']}",
        "gender": user["gender"],
        "age": user["dob"]["age"],
        "date_of_birth": dt.date.fromisoformat(user["dob"]["date"][:10]),
        "birth_year": int(user["dob"]["date"][:4]),
        "country": user["location"]["country"],
        "nat": user["nat"],
        "city": user["location"]["city"],
        "state": user["location"]["state"],
        "postcode": str(user["location"]["postcode"]),
        "registered_date": dt.date.fromisoformat(user["registered"]["date"][:10]),
        "email_domain": user["email"].split("@")[1],
        "email_pseudo": _pseudo(user["email"].lower()),
        "phone_pseudo": _phone(user["phone"]),
        "cell_pseudo": _phone(user["cell"]),
        "processed_time": PROCESSED_UTC,
        "source": meta["source"],
        "producer_id": meta["producer_id"],
        "seq": meta["seq"],
        "topic": TOPIC,
        "partition": 0,
        "offset": offset,
        "user_index": index,
    }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _enrich(users: DataFrame) -> DataFrame:
    return users.transform(transform.enrich_users(KEY, 1, PROCESSED))


def _rows(df: DataFrame, order: list[str]) -> list[dict[str, Any]]:
    return [r.asDict(recursive=True) for r in df.orderBy(*order).collect()]


@pytest.fixture(scope="module")
def fixture_users(spark: SparkSession, fixtures_dir: Path) -> tuple[DataFrame, list[dict[str, Any]]]:
    bronze, messages = fixture_bronze(spark, fixtures_dir)
    return transform.users_from_bronze(bronze).cache(), messages


def test_every_fixture_user_enriched_exactly(fixture_users: tuple[DataFrame, list[dict[str, Any]]]) -> None:
    users, messages = fixture_users
    enriched = _enrich(users)
    assert enriched.columns == ENRICHED_COLUMNS
    expected = [
        expected_enriched(user, message, offset, index)
        for offset, message in enumerate(messages)
        for index, user in enumerate(message["results"])
    ]
    assert len(expected) == 230
    assert_rows(enriched, expected)


def test_processed_time_stamped_later_gives_the_same_users(
    fixture_users: tuple[DataFrame, list[dict[str, Any]]],
) -> None:
    """The serving path and silver stamp the processed time after their heavy stage: the same
    rows, column for column, as enriching with it; extra columns keep their place after it."""
    users, _ = fixture_users
    later = users.transform(transform.enrich_users(KEY, 1, None, keep=("position",))).transform(
        transform.with_processed_time(PROCESSED)
    )
    assert later.columns == [*ENRICHED_COLUMNS, "position"]
    assert_same_frame(later, users.transform(transform.enrich_users(KEY, 1, PROCESSED, keep=("position",))))
    assert "processed_time" not in users.transform(transform.enrich_users(KEY, 1, None)).columns


def test_quirks_parse(fixture_users: tuple[DataFrame, list[dict[str, Any]]]) -> None:
    """Postcode number or string, null id.value, string coordinates, non-Latin names."""
    users, messages = fixture_users
    got = users.selectExpr(
        "offset",
        "position",
        "user.location.postcode AS postcode",
        "user.id.value AS id_value",
        "user.location.coordinates.latitude AS latitude",
        "user.name.first AS first",
        "user.location.street.number AS street_number",
        "unparseable",
        "user_unparseable",
    )
    expected = [
        {
            "offset": offset,
            "position": position,
            "postcode": str(u["location"]["postcode"]),
            "id_value": u["id"]["value"],
            "latitude": u["location"]["coordinates"]["latitude"],
            "first": u["name"]["first"],
            "street_number": u["location"]["street"]["number"],
            "unparseable": False,
            "user_unparseable": False,
        }
        for offset, message in enumerate(messages)
        for position, u in enumerate(message["results"])
    ]
    assert_rows(got, expected)
    # The fixtures do carry each quirk (else this test would prove nothing).
    assert {type(e["postcode"]) for e in expected} == {str}
    postcodes = [u["location"]["postcode"] for m in messages for u in m["results"]]
    assert {type(p) for p in postcodes} == {int, str}
    assert any(e["id_value"] is None for e in expected)
    assert any(not e["first"].isascii() for e in expected)


def test_no_raw_contact_data_in_enriched(fixture_users: tuple[DataFrame, list[dict[str, Any]]]) -> None:
    users, messages = fixture_users
    secrets = {
        s
        for m in messages
        for u in m["results"]
        for s in (
            u["email"],
            u["phone"],
            u["cell"],
            u["id"]["value"],
            u["login"]["username"],
            u["location"]["street"]["name"],
            u["location"]["coordinates"]["latitude"],
            u["location"]["coordinates"]["longitude"],
        )
        if s
    }
    text = json.dumps([r.asDict(recursive=True) for r in _enrich(users).collect()], default=str)
    assert [s for s in secrets if s in text] == []


def test_split_message_keeps_the_response_index(spark: SparkSession, fixtures_dir: Path) -> None:
    """A response split over two messages numbers its users as the API did."""
    info, users = load_users(fixtures_dir, "nat-FR.json")
    first = envelope(users[:4], batch_id="b-split", info=info, part=0, parts=2, first_index=0)
    second = envelope(users[4:], batch_id="b-split", info=info, part=1, parts=2, first_index=4)
    bronze = bronze_df(
        spark, [bronze_row(encode(first), 10, "b-split"), bronze_row(encode(second), 11, "b-split")]
    )
    got = transform.users_from_bronze(bronze).selectExpr(
        "offset", "position", "user_index", "user.login.uuid AS uuid"
    )
    assert_rows(
        got,
        [
            {
                "offset": 10 if i < 4 else 11,
                "position": i if i < 4 else i - 4,
                "user_index": i,
                "uuid": u["login"]["uuid"],
            }
            for i, u in enumerate(users)
        ],
    )


def test_unparseable_and_empty_messages_are_kept_and_flagged(spark: SparkSession) -> None:
    values: list[bytes | None] = [
        b"not json",
        None,
        b"[1, 2]",
        "é{".encode(),
        encode(envelope([], batch_id="b-empty")),
        json.dumps({"meta": {"batch_id": "b-none"}}).encode(),
        json.dumps({"meta": {"seq": "not a number"}, "results": []}).encode(),
        # Text after the envelope: the parser would read the first value and stop there.
        encode(envelope([], batch_id="b-trailing")) + b"}}garbage",
        encode(envelope([], batch_id="b-first")) + b"\n" + encode(envelope([], batch_id="b-second")),
        encode(envelope([], batch_id="b-comma")) + b", " + encode(envelope([], batch_id="b-second")),
        encode(envelope([], batch_id="b-spaces")) + b" \n\t",
    ]
    bronze = bronze_df(spark, [bronze_row(v, offset) for offset, v in enumerate(values)])
    got = transform.users_from_bronze(bronze).select(
        "offset", "unparseable", "position", "user_index", "results_count", "raw_value", "batch_id"
    )
    assert_rows(got, [
        {"offset": 0, "unparseable": True, "position": None, "user_index": None, "results_count": None,
         "raw_value": bytearray(b"not json"), "batch_id": None},
        {"offset": 1, "unparseable": True, "position": None, "user_index": None, "results_count": None,
         "raw_value": None, "batch_id": None},
        {"offset": 2, "unparseable": True, "position": None, "user_index": None, "results_count": None,
         "raw_value": bytearray(b"[1, 2]"), "batch_id": None},
        {"offset": 3, "unparseable": True, "position": None, "user_index": None, "results_count": None,
         "raw_value": bytearray("é{".encode()), "batch_id": None},
        {"offset": 4, "unparseable": False, "position": None, "user_index": None, "results_count": 0,
         "raw_value": bytearray(values[4] or b""), "batch_id": "b-empty"},
        {"offset": 5, "unparseable": False, "position": None, "user_index": None, "results_count": None,
         "raw_value": bytearray(values[5] or b""), "batch_id": "b-none"},
        {"offset": 6, "unparseable": True, "position": None, "user_index": None, "results_count": None,
         "raw_value": bytearray(values[6] or b""), "batch_id": None},
        *({"offset": offset, "unparseable": True, "position": None, "user_index": None, "results_count": None,
           "raw_value": bytearray(values[offset] or b""), "batch_id": None} for offset in (7, 8, 9)),
        {"offset": 10, "unparseable": False, "position": None, "user_index": None, "results_count": 0,
         "raw_value": bytearray(values[10] or b""), "batch_id": "b-spaces"},
    ])  # fmt: skip


def test_malformed_user_fails_alone(spark: SparkSession, fixtures_dir: Path) -> None:
    _, users = load_users(fixtures_dir, "nat-DE.json")
    bad = json.loads(json.dumps(users[1]))
    bad["dob"]["age"] = "thirty"
    message = envelope([users[0], bad, 7, None, users[2]], batch_id="b-mixed")
    bronze = bronze_df(spark, [bronze_row(encode(message), 0, "b-mixed")])
    got = transform.users_from_bronze(bronze).select(
        "position", "unparseable", "user_unparseable", "user_json"
    )
    assert_rows(got, [
        {"position": 0, "unparseable": False, "user_unparseable": False, "user_json": _compact(users[0])},
        {"position": 1, "unparseable": False, "user_unparseable": True, "user_json": _compact(bad)},
        {"position": 2, "unparseable": False, "user_unparseable": True, "user_json": "7"},
        {"position": 3, "unparseable": False, "user_unparseable": True, "user_json": None},
        {"position": 4, "unparseable": False, "user_unparseable": False, "user_json": _compact(users[2])},
    ])  # fmt: skip


def test_event_time_is_fetched_at_in_utc_whatever_the_session_zone(
    spark: SparkSession, fixtures_dir: Path
) -> None:
    """ingestion_time comes from meta.fetched_at (never the Kafka timestamp), dates are UTC dates."""
    _, users = load_users(fixtures_dir, "nat-US.json")
    user = users[0]
    user["dob"]["date"] = "1990-03-01T02:00:00.000Z"  # 28 Feb in Los Angeles
    message = envelope([user], batch_id="b-tz", fetched_at="2026-11-28T02:30:00.000+00:00")
    bronze = bronze_df(spark, [bronze_row(encode(message), 0, "b-tz")])
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        row = (
            _enrich(transform.users_from_bronze(bronze))
            .select("ingestion_time", "date_of_birth", "birth_year")
            .collect()
        )
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous or "UTC")
    assert [r.asDict() for r in row] == [
        {
            "ingestion_time": dt.datetime(2026, 11, 28, 2, 30),
            "date_of_birth": dt.date(1990, 3, 1),
            "birth_year": 1990,
        }
    ]


def test_processed_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        transform.enrich_users(KEY, 1, dt.datetime(2026, 11, 28))


def test_the_producers_own_messages_parse(spark: SparkSession, fixtures_dir: Path) -> None:
    """Contract with ingest/envelope.py: its split messages come back as the API's users, in order."""
    body = json.loads((fixtures_dir / "nat-IR.json").read_text(encoding="utf-8"))
    fetched = dt.datetime(2026, 11, 27, 23, 40, 0, 123456, tzinfo=dt.UTC)
    batch = envelope_module.make_batch(copy.deepcopy(body), "replay", "p-contract", 42, fetched)
    sent = envelope_module.messages(batch, max_bytes=6000)
    assert len(sent) > 1  # the contract covers a split batch
    bronze = bronze_df(
        spark,
        [(m.key, m.value, TOPIC, 0, offset, KAFKA_TIME, 0, m.headers) for offset, m in enumerate(sent)],
    )
    checked = quality.with_reasons(transform.users_from_bronze(bronze))
    got = checked.selectExpr(
        "user_index", "user.login.uuid AS uuid", "batch_id", "ingestion_time", "meta.seq AS seq", "reasons"
    )
    assert_rows(
        got,
        [
            {
                "user_index": i,
                "uuid": u["login"]["uuid"],
                "batch_id": batch.meta.batch_id,
                "ingestion_time": FETCHED_AT_UTC,
                "seq": 42,
                "reasons": [],
            }
            for i, u in enumerate(body["results"])
        ],
    )
