"""Quality rules on the real fixtures and on hand-made bad records, results compared whole."""

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
from pyspark.sql import functions as F

from jobs import pipeline
from jobs.core import quality, transform
from jobs.core.schema import NATIONALITIES
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
from tests.unit.frames import assert_same_frame

REASONS = (
    "unparseable_json",
    "invalid_encoding",
    "missing_results",
    "invalid_meta",
    "wrong_type",
    "oversized_field",
    "missing_uuid",
    "malformed_uuid",
    "missing_name",
    "unknown_gender",
    "age_out_of_range",
    "age_inconsistent_with_dob",
    "registered_age_inconsistent",
    "registered_before_birth",
    "date_in_future",
    "empty_country",
    "unknown_nationality",
    "invalid_email",
    "duplicate_uuid_in_batch",
)


def _pseudo(text: str) -> str:
    return "v1:" + hmac.new(KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class BadBatch:
    """Eight Kafka records: one message of 15 users each breaking (or just passing) one rule,
    and messages that fail as a whole; expected reasons written by hand."""

    def __init__(self, fixtures_dir: Path) -> None:
        _, page1 = load_users(fixtures_dir, "mixed-10.json")
        _, page2 = load_users(fixtures_dir, "mixed-10-page2.json")
        pool = page1 + page2
        u = [copy.deepcopy(x) for x in pool[:15]]
        del u[1]["login"]["uuid"]
        u[2]["login"]["uuid"] = "NOT-A-UUID"
        u[3]["dob"] = {"date": "1876-01-01T00:00:00.000Z", "age": 150}  # consistent, but out of range
        u[4]["dob"]["age"] += 3
        u[5]["location"]["country"] = "  "
        u[6]["nat"] = "XX"
        u[7]["email"] = "not-an-email"
        u[8]["login"]["uuid"] = u[0]["login"]["uuid"]
        u[9]["dob"]["age"] = "thirty"
        # fetched_at is 2026-11-27T23:40Z: a birthday the next day may be counted either way...
        u[10]["dob"] = {"date": "2000-11-28T10:00:00.000Z", "age": 26}
        u[11]["dob"] = {"date": "2000-11-28T10:00:00.000Z", "age": 25}
        # ...but not one two days later.
        u[12]["dob"] = {"date": "2000-11-29T10:00:00.000Z", "age": 26}
        u[13]["dob"]["date"] = "yesterday"
        del u[14]["dob"]["age"]
        self.users = u
        self.pool = pool
        good = copy.deepcopy(pool[15])
        resent = copy.deepcopy(pool[16])
        self.messages: list[bytes | None] = [
            encode(envelope(u, batch_id="b-bad")),
            b"not json",
            encode(envelope([], batch_id="b-empty")),
            json.dumps({"meta": envelope([], batch_id="b-none")["meta"]}).encode(),
            encode(envelope([good], batch_id="b-meta", fetched_at="yesterday")),
            None,
            encode(envelope([resent], batch_id="b-resent")),
            encode(envelope([resent], batch_id="b-resent")),
        ]
        self.expected_reasons = [
            (0, 0, []),
            (0, 1, ["missing_uuid"]),
            (0, 2, ["malformed_uuid"]),
            (0, 3, ["age_out_of_range"]),
            (0, 4, ["age_inconsistent_with_dob"]),
            (0, 5, ["empty_country"]),
            (0, 6, ["unknown_nationality"]),
            (0, 7, ["invalid_email"]),
            (0, 8, ["duplicate_uuid_in_batch"]),
            (0, 9, ["unparseable_json"]),
            (0, 10, []),
            (0, 11, []),
            (0, 12, ["age_inconsistent_with_dob"]),
            (0, 13, ["age_inconsistent_with_dob"]),
            (0, 14, ["age_out_of_range"]),
            (1, None, ["unparseable_json"]),
            (2, None, ["missing_results"]),
            (3, None, ["missing_results"]),
            (4, 0, ["invalid_meta"]),
            (5, None, ["unparseable_json"]),
            (6, 0, []),  # a message sent twice is not a duplicate inside the response
            (7, 0, []),
        ]

    def bronze(self, spark: SparkSession) -> DataFrame:
        return bronze_df(spark, [bronze_row(v, offset) for offset, v in enumerate(self.messages)])


@pytest.fixture(scope="module")
def bad(fixtures_dir: Path) -> BadBatch:
    return BadBatch(fixtures_dir)


@pytest.fixture(scope="module")
def checked(spark: SparkSession, bad: BadBatch) -> DataFrame:
    return quality.with_reasons(transform.users_from_bronze(bad.bronze(spark))).cache()


def _reasons(df: DataFrame) -> list[tuple[Any, ...]]:
    return [
        tuple(r) for r in df.select("offset", "position", "reasons").orderBy("offset", "position").collect()
    ]


def test_rules_are_data(spark: SparkSession) -> None:
    rules = quality.quality_rules()
    assert [r.reason for r in rules] == list(REASONS)
    assert quality.reason_codes() == REASONS
    assert all(r.description.strip() for r in rules)


def test_every_fixture_user_is_valid(spark: SparkSession, fixtures_dir: Path) -> None:
    bronze, messages = fixture_bronze(spark, fixtures_dir)
    got = _reasons(quality.with_reasons(transform.users_from_bronze(bronze)))
    assert got == [(o, p, []) for o, m in enumerate(messages) for p in range(len(m["results"]))]
    assert {u["nat"] for m in messages for u in m["results"]} == set(NATIONALITIES)


def test_each_bad_record_gets_its_reason(checked: DataFrame, bad: BadBatch) -> None:
    assert _reasons(checked) == bad.expected_reasons


def test_valid_and_quarantined_split(checked: DataFrame, bad: BadBatch) -> None:
    keys = [(o, p) for o, p, _ in bad.expected_reasons]
    assert [
        (r.offset, r.position) for r in quality.valid(checked).orderBy("offset", "position").collect()
    ] == [k for k, (_, _, reasons) in zip(keys, bad.expected_reasons, strict=True) if not reasons]
    assert [
        (r.offset, r.position) for r in quality.quarantined(checked).orderBy("offset", "position").collect()
    ] == [k for k, (_, _, reasons) in zip(keys, bad.expected_reasons, strict=True) if reasons]


def test_quarantine_documents(checked: DataFrame, bad: BadBatch) -> None:
    docs = {
        r["_id"]: r.asDict(recursive=True)
        for r in quality.quarantined(checked)
        .transform(quality.quarantine_documents(KEY, 1, PROCESSED))
        .collect()
    }
    expected_ids = [
        f"{TOPIC}-0-{o}-{'message' if p is None else p}" for o, p, reasons in bad.expected_reasons if reasons
    ]
    assert sorted(docs) == sorted(expected_ids)

    not_json = b"not json"
    assert docs[f"{TOPIC}-0-1-message"] == {
        "_id": f"{TOPIC}-0-1-message",
        "topic": TOPIC,
        "partition": 0,
        "offset": 1,
        "position": None,
        "user_index": None,
        "batch_id": None,
        "producer_id": None,
        "seq": None,
        "source": None,
        "reasons": ["unparseable_json"],
        "ingestion_time": None,
        "processed_time": PROCESSED_UTC,
        "user_id": None,
        "record": None,
        "raw_sha256": hashlib.sha256(not_json).hexdigest(),
        "raw_bytes": len(not_json),
    }
    u = bad.users[7]
    assert docs[f"{TOPIC}-0-0-7"] == {
        "_id": f"{TOPIC}-0-0-7",
        "topic": TOPIC,
        "partition": 0,
        "offset": 0,
        "position": 7,
        "user_index": 7,
        "batch_id": "b-bad",
        "producer_id": "unit-producer",
        "seq": 1,
        "source": "replay",
        "reasons": ["invalid_email"],
        "ingestion_time": FETCHED_AT_UTC,
        "processed_time": PROCESSED_UTC,
        "user_id": u["login"]["uuid"],
        "record": {
            "gender": u["gender"],
            "name": u["name"],
            "location": {
                "city": u["location"]["city"],
                "state": u["location"]["state"],
                "country": u["location"]["country"],
                "postcode": str(u["location"]["postcode"]),
            },
            "email_pseudo": _pseudo("not-an-email"),
            "email_domain": None,
            "phone_pseudo": _pseudo("".join(c for c in u["phone"] if c.isdigit())),
            "cell_pseudo": _pseudo("".join(c for c in u["cell"] if c.isdigit())),
            "id_name": u["id"]["name"],
            "id_value_pseudo": _pseudo(u["id"]["value"]) if u["id"]["value"] else None,
            "dob": u["dob"],
            "registered": u["registered"],
            "nat": u["nat"],
        },
        "raw_sha256": None,
        "raw_bytes": None,
    }


def test_no_raw_contact_data_in_quarantine_documents(checked: DataFrame, bad: BadBatch) -> None:
    docs = quality.quarantined(checked).transform(quality.quarantine_documents(KEY, 1, PROCESSED)).collect()
    text = json.dumps([d.asDict(recursive=True) for d in docs], default=str, ensure_ascii=False)
    secrets = {
        s
        for u in bad.pool
        for s in (
            u["email"],
            u["phone"],
            u["cell"],
            u["id"]["value"],
            u["login"]["username"],
            u["location"]["street"]["name"],
            u["location"]["coordinates"]["latitude"],
        )
        if s
    }
    assert [s for s in secrets if s in text] == []


def test_quarantine_raw_keeps_records_untouched(checked: DataFrame, bad: BadBatch) -> None:
    rows = {
        r["anomaly_id"]: r.asDict(recursive=True)
        for r in quality.quarantined(checked).transform(quality.quarantine_raw(PROCESSED)).collect()
    }
    assert rows[f"{TOPIC}-0-1-message"] == {
        "anomaly_id": f"{TOPIC}-0-1-message",
        "topic": TOPIC,
        "partition": 0,
        "offset": 1,
        "kafka_timestamp": KAFKA_TIME,
        "kafka_key": None,
        "position": None,
        "user_index": None,
        "batch_id": None,
        "reasons": ["unparseable_json"],
        "ingestion_time": None,
        "processed_time": PROCESSED_UTC,
        "raw_json": "not json",
        "raw_value": bytearray(b"not json"),
    }
    assert rows[f"{TOPIC}-0-0-9"] == {
        "anomaly_id": f"{TOPIC}-0-0-9",
        "topic": TOPIC,
        "partition": 0,
        "offset": 0,
        "kafka_timestamp": KAFKA_TIME,
        "kafka_key": None,
        "position": 9,
        "user_index": 9,
        "batch_id": "b-bad",
        "reasons": ["unparseable_json"],
        "ingestion_time": FETCHED_AT_UTC,
        "processed_time": PROCESSED_UTC,
        "raw_json": _compact(bad.users[9]),
        "raw_value": None,
    }
    assert rows[f"{TOPIC}-0-5-message"]["raw_json"] is None  # a tombstone has no value
    assert sorted(
        json.loads(r["raw_json"])["email"] for k, r in rows.items() if k.startswith(f"{TOPIC}-0-0-")
    ) == sorted(
        bad.users[p]["email"]
        for o, p, reasons in bad.expected_reasons
        if o == 0 and p is not None and reasons
    )


def test_batch_metrics(checked: DataFrame) -> None:
    rows = [r.asDict(recursive=True) for r in quality.batch_metrics(checked).collect()]
    assert rows == [
        {
            "records_in": 8,
            "users_in": 18,
            "valid": 5,
            "quarantined": 17,
            "reasons": {
                **dict.fromkeys(REASONS, 0),
                "unparseable_json": 3,
                "missing_results": 2,
                "invalid_meta": 1,
                "missing_uuid": 1,
                "malformed_uuid": 1,
                "age_out_of_range": 2,
                "age_inconsistent_with_dob": 3,
                "empty_country": 1,
                "unknown_nationality": 1,
                "invalid_email": 1,
                "duplicate_uuid_in_batch": 1,
            },
            "completeness": {
                "user_id": 16 / 18,
                "email": 17 / 18,
                "country": 16 / 18,
                "age": 16 / 18,
                "nat": 17 / 18,
            },
            "duplicates_in_batch": 1,
        }
    ]


def test_batch_metrics_of_an_empty_batch(spark: SparkSession) -> None:
    empty = quality.with_reasons(transform.users_from_bronze(bronze_df(spark, [])))
    assert [r.asDict(recursive=True) for r in quality.batch_metrics(empty).collect()] == [
        {
            "records_in": 0,
            "users_in": 0,
            "valid": 0,
            "quarantined": 0,
            "reasons": dict.fromkeys(REASONS, 0),
            "completeness": {},
            "duplicates_in_batch": 0,
        }
    ]


def test_age_is_judged_at_fetch_time_not_now(spark: SparkSession, fixtures_dir: Path) -> None:
    """The same record fetched a year later with the same ages fails; as fetched, it passes."""
    _, users = load_users(fixtures_dir, "nat-NO.json")
    messages = [
        encode(envelope(users, batch_id="b-then")),
        encode(envelope(users, batch_id="b-later", fetched_at="2027-12-01T00:00:00.000Z")),
    ]
    checked = quality.with_reasons(
        transform.users_from_bronze(bronze_df(spark, [bronze_row(m, o) for o, m in enumerate(messages)]))
    )
    assert _reasons(checked) == [(0, p, []) for p in range(10)] + [
        (1, p, ["age_inconsistent_with_dob", "registered_age_inconsistent"]) for p in range(10)
    ]


def test_quarantine_needs_aware_processed_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        quality.quarantine_raw(dt.datetime(2026, 1, 1))


def test_serving_path_keeps_exactly_the_lake_paths_valid_users(
    spark: SparkSession, bad: BadBatch, fixtures_dir: Path
) -> None:
    """Row rules in the streaming plan, per-batch rules in the batch: the same users as all rules
    at once (duplicates within a response dropped, bad rows left out), column for column."""
    fixtures, _ = fixture_bronze(spark, fixtures_dir)
    raw = fixtures.unionByName(bad.bronze(spark).withColumn("partition", F.lit(1)))
    lake = quality.valid(pipeline.checked_users(raw)).transform(transform.enrich_users(KEY, 1, PROCESSED))
    serving_rows = pipeline.serving_rows(raw, KEY, 1)
    serving = (
        quality.valid(quality.with_batch_reasons(serving_rows))
        .drop("reasons")
        .transform(transform.with_processed_time(PROCESSED))
    )
    assert serving.columns == list(transform.ENRICHED_COLUMNS)
    assert_same_frame(serving, lake)
    # the bad batch's valid users: 0, 10 and 11 of the first message, and the user re-sent twice
    assert lake.where(F.col("partition") == 1).count() == 5
