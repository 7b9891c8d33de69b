"""Bronze-like Kafka rows built from the real API fixtures, as the producer sends them."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from jobs.core.schema import BRONZE_SCHEMA

TOPIC = "random_users"
FETCHED_AT = "2026-11-27T23:40:00.123Z"
# The same instant as a naive UTC datetime (the test session runs in UTC).
FETCHED_AT_UTC = dt.datetime(2026, 11, 27, 23, 40, 0, 123000)
# A Kafka timestamp unlike fetched_at, to prove the job never uses it as event time.
KAFKA_TIME = dt.datetime(2030, 1, 1, 0, 0, 0)
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
KEY_VERSION = 1
PROCESSED = dt.datetime(2026, 11, 28, 0, 0, 5, tzinfo=dt.UTC)
PROCESSED_UTC = dt.datetime(2026, 11, 28, 0, 0, 5)
SECRETS = ("password", "salt", "md5", "sha1", "sha256")


def fixture_names(fixtures_dir: Path) -> list[str]:
    """Every fixture that is an API response with users (21 nationalities + mixed pages)."""
    return sorted(p.name for p in fixtures_dir.glob("*.json") if "results" in json.loads(p.read_text()))


def load_users(fixtures_dir: Path, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(info, users) of a fixture, with login secrets removed as the producer does."""
    body = json.loads((fixtures_dir / name).read_text(encoding="utf-8"))
    users = copy.deepcopy(body["results"])
    for user in users:
        for secret in SECRETS:
            user["login"].pop(secret, None)
    return body["info"], users


def envelope(
    users: list[Any],
    *,
    batch_id: str,
    seq: int = 1,
    info: dict[str, Any] | None = None,
    fetched_at: str = FETCHED_AT,
    first_index: int = 0,
    part: int = 0,
    parts: int = 1,
    source: str = "replay",
) -> dict[str, Any]:
    return {
        "meta": {
            "batch_id": batch_id,
            "producer_id": "unit-producer",
            "seq": seq,
            "fetched_at": fetched_at,
            "source": source,
            "part": part,
            "parts": parts,
            "first_index": first_index,
        },
        "info": info or {"seed": "unit", "results": len(users), "page": 1, "version": "1.4"},
        "results": users,
    }


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def bronze_row(
    value: bytes | None, offset: int, key: str | None = None, partition: int = 0
) -> tuple[Any, ...]:
    headers = [("batch_id", key.encode()) if key else ("batch_id", None)]
    return (
        key.encode() if key else None,
        value,
        TOPIC,
        partition,
        offset,
        KAFKA_TIME,
        0,
        headers,
    )


def bronze_df(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, BRONZE_SCHEMA)


def batch_id_of(name: str) -> str:
    """A stable uuid-like batch id per fixture file."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fixture/{name}"))


def fixture_bronze(spark: SparkSession, fixtures_dir: Path) -> tuple[DataFrame, list[dict[str, Any]]]:
    """One Kafka record per fixture file, and the list of messages sent (offset = position)."""
    messages = []
    rows = []
    for offset, name in enumerate(fixture_names(fixtures_dir)):
        info, users = load_users(fixtures_dir, name)
        message = envelope(users, batch_id=batch_id_of(name), seq=offset, info=info)
        messages.append(message)
        rows.append(bronze_row(encode(message), offset, key=message["meta"]["batch_id"]))
    return bronze_df(spark, rows), messages


def with_raw_bytes(value: bytes, marker: str, raw: bytes) -> bytes:
    """`value` with each `marker` (as UTF-8) replaced by `raw`, e.g. bytes that are not UTF-8."""
    encoded = marker.encode("utf-8")
    assert encoded in value, f"marker {marker!r} not in the message"
    return value.replace(encoded, raw)
