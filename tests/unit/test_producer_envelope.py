"""Batch identity, credential removal, message format and splits."""

from __future__ import annotations

import copy
import itertools
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from ingest.envelope import (
    CREDENTIALS,
    SequenceCounter,
    UserTooLarge,
    from_record,
    make_batch,
    messages,
    to_record,
)

FETCHED = datetime(2026, 11, 27, 23, 40, 0, 123456, tzinfo=UTC)


def _fixture(fixtures_dir: Path, name: str = "nat-GB.json") -> dict:
    return json.loads((fixtures_dir / name).read_text())


def test_message_is_the_response_minus_credentials_plus_identity(fixtures_dir: Path) -> None:
    document = _fixture(fixtures_dir)
    expected_users = copy.deepcopy(document["results"])
    for user in expected_users:
        for key in CREDENTIALS:
            del user["login"][key]
    batch = make_batch(document, "api", "p-1", 42, FETCHED)
    [message] = messages(batch, 1_048_576)
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", batch.meta.batch_id
    )
    meta = {
        "batch_id": batch.meta.batch_id,
        "producer_id": "p-1",
        "seq": 42,
        "fetched_at": "2026-11-27T23:40:00.123Z",
        "source": "api",
        "part": 0,
        "parts": 1,
        "first_index": 0,
    }
    assert orjson.loads(message.value) == {"meta": meta, "info": document["info"], "results": expected_users}
    assert message.key == batch.meta.batch_id.encode()
    assert message.headers == [
        ("batch_id", batch.meta.batch_id.encode()),
        ("producer_id", b"p-1"),
        ("seq", b"42"),
        ("fetched_at", b"2026-11-27T23:40:00.123Z"),
        ("source", b"api"),
    ]
    assert b"password" not in message.value and b"sha256" not in message.value
    assert all(set(u["login"]) == {"uuid", "username"} for u in orjson.loads(message.value)["results"])


def test_identity_survives_the_spool(fixtures_dir: Path) -> None:
    batch = make_batch(_fixture(fixtures_dir), "local", "p-1", 7, FETCHED)
    again = from_record(to_record(batch))
    assert again == batch
    assert messages(again, 1_048_576) == messages(batch, 1_048_576)


def test_a_large_batch_is_split_not_dropped(fixtures_dir: Path) -> None:
    document = _fixture(fixtures_dir, "mixed-10.json")
    document["results"] = [copy.deepcopy(u) for _ in range(30) for u in document["results"]]
    document["info"]["results"] = len(document["results"])
    batch = make_batch(document, "api", "p-1", 1, FETCHED)
    parts = messages(batch, 40_000)
    assert len(parts) > 1
    values = [orjson.loads(m.value) for m in parts]
    assert all(len(m.value) <= 40_000 for m in parts)
    assert [v["meta"]["part"] for v in values] == list(range(len(parts)))
    assert {(v["meta"]["batch_id"], v["meta"]["parts"], v["meta"]["seq"]) for v in values} == {
        (batch.meta.batch_id, len(parts), 1)
    }
    assert {m.key for m in parts} == {batch.meta.batch_id.encode()}
    rebuilt: list[dict] = []
    for v in values:
        assert v["meta"]["first_index"] == len(rebuilt)
        assert v["info"] == document["info"]
        rebuilt.extend(v["results"])
    assert rebuilt == batch.results


def test_one_user_larger_than_a_message_is_an_error(fixtures_dir: Path) -> None:
    batch = make_batch(_fixture(fixtures_dir), "api", "p-1", 1, FETCHED)
    with pytest.raises(UserTooLarge, match="single user"):
        messages(batch, 1500)


def test_sequence_is_monotonic_across_restarts(tmp_path: Path) -> None:
    first = SequenceCounter(tmp_path, "p-1")
    seen = [first.next() for _ in range(5)]
    second = SequenceCounter(tmp_path, "p-1")  # a restart (even after a crash)
    seen += [second.next() for _ in range(1500)]
    other = SequenceCounter(tmp_path, "p-2")
    assert seen[:5] == [0, 1, 2, 3, 4]
    assert all(a < b for a, b in itertools.pairwise(seen))
    assert other.next() == 0
