"""A batch's identity and its Kafka messages.

Identity (batch id, producer id, sequence, fetch time, source) is stamped ONCE,
when the batch is fetched, and travels unchanged through retries, the spool and
splits, inside the value (`meta`) and in the headers: a batch sent twice is
recognisably the same batch downstream. The Kafka record timestamp is not
identity (a re-send gets a new one).

Credentials (`login.password/salt/md5/sha1/sha256`) are removed here, before
anything leaves the producer: the project never stores them anywhere.

Message value (UTF-8 JSON):
    {"meta": {"batch_id", "producer_id", "seq", "fetched_at", "source",
              "part", "parts", "first_index"},
     "info": <the API's info envelope>, "results": [<users>]}
Key: batch_id. Headers: batch_id, producer_id, seq, fetched_at, source.
A batch too large for one message is split into `parts` messages; user i of
part p is user `first_index + i` of the batch, whatever the split.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

CREDENTIALS = ("password", "salt", "md5", "sha1", "sha256")
SOURCES = ("api", "local", "replay")
# Room kept for the meta block, key and headers when sizing parts.
_OVERHEAD = 1024


def strip_credentials(users: list[Any]) -> list[Any]:
    """Remove login secrets in place (the documents are the producer's own copy)."""
    for user in users:
        login = user.get("login") if isinstance(user, dict) else None
        if isinstance(login, dict):
            for key in CREDENTIALS:
                login.pop(key, None)
    return users


def iso_ms(moment: datetime) -> str:
    """2026-11-27T23:40:00.123Z (UTC, milliseconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class BatchMeta:
    batch_id: str
    producer_id: str
    seq: int
    fetched_at: str
    source: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("batch_id", self.batch_id.encode()),
            ("producer_id", self.producer_id.encode()),
            ("seq", str(self.seq).encode()),
            ("fetched_at", self.fetched_at.encode()),
            ("source", self.source.encode()),
        ]


@dataclass
class Batch:
    meta: BatchMeta
    info: dict[str, Any]
    results: list[Any]
    size_hint: int = field(default=0, compare=False)

    @property
    def users(self) -> int:
        return len(self.results)


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    part: int
    parts: int
    users: int


class SequenceCounter:
    """Monotonic sequence per producer id that survives restarts.

    Numbers are reserved in blocks written (and fsync'd) ahead to
    `<dir>/<producer_id>.seq`: a restart continues after the reserved block, so
    the sequence may skip numbers but never repeats or goes back.
    """

    BLOCK = 1000

    def __init__(self, directory: Path, producer_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"{producer_id}.seq"
        self._next = int(self._path.read_text().strip() or 0) if self._path.exists() else 0
        self._reserved = self._next

    def next(self) -> int:
        if self._next >= self._reserved:
            self._reserved = self._next + self.BLOCK
            tmp = self._path.with_suffix(".seq.tmp")
            with open(tmp, "w") as handle:
                handle.write(str(self._reserved))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        value = self._next
        self._next += 1
        return value


def make_batch(
    document: dict[str, Any], source: str, producer_id: str, seq: int, fetched_at: datetime
) -> Batch:
    """Stamp a fetched (already validated) document with its identity."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r} must be one of {SOURCES}")
    meta = BatchMeta(
        batch_id=str(uuid.uuid4()),
        producer_id=producer_id,
        seq=seq,
        fetched_at=iso_ms(fetched_at),
        source=source,
    )
    info = document.get("info")
    return Batch(
        meta=meta,
        info=dict(info) if isinstance(info, dict) else {},
        results=strip_credentials(document["results"]),
    )


def _meta(meta: BatchMeta, part: int, parts: int, first_index: int) -> dict[str, Any]:
    return {
        "batch_id": meta.batch_id,
        "producer_id": meta.producer_id,
        "seq": meta.seq,
        "fetched_at": meta.fetched_at,
        "source": meta.source,
        "part": part,
        "parts": parts,
        "first_index": first_index,
    }


def encode_value(
    batch: Batch, part: int = 0, parts: int = 1, first_index: int = 0, users: list[Any] | None = None
) -> bytes:
    body = {
        "meta": _meta(batch.meta, part, parts, first_index),
        "info": batch.info,
        "results": batch.results if users is None else users,
    }
    return orjson.dumps(body)


class UserTooLarge(ValueError):
    """One user alone is larger than a Kafka message may be: the batch can never be sent."""


def messages(batch: Batch, max_bytes: int) -> list[Message]:
    """The batch as one message, or as the fewest equal parts that each fit `max_bytes`."""
    key = batch.meta.batch_id.encode()
    headers = batch.meta.headers()
    whole = encode_value(batch)
    if len(whole) + _OVERHEAD <= max_bytes:
        return [Message(key, whole, headers, 0, 1, batch.users)]
    n = len(batch.results)
    parts = min(n, max(2, -(-(len(whole) + _OVERHEAD) // max_bytes)))
    while True:
        size = -(-n // parts)
        chunks = [(i, batch.results[i : i + size]) for i in range(0, n, size)]
        values = [
            encode_value(batch, p, len(chunks), first, chunk) for p, (first, chunk) in enumerate(chunks)
        ]
        if all(len(v) + _OVERHEAD <= max_bytes for v in values) or parts >= n:
            break
        parts = min(n, parts * 2)
    too_big = [len(v) for v in values if len(v) + _OVERHEAD > max_bytes]
    if too_big:
        # A single user larger than a message: nothing sensible can split it.
        raise UserTooLarge(f"a single user needs {max(too_big)} bytes, above the {max_bytes}-byte limit")
    return [
        Message(key, value, headers, p, len(chunks), len(chunk))
        for p, (value, (_, chunk)) in enumerate(zip(values, chunks, strict=True))
    ]


def to_record(batch: Batch) -> bytes:
    """The spool's line for a batch (the unsplit value; it is split again on send)."""
    return encode_value(batch)


def from_record(line: bytes) -> Batch:
    body = orjson.loads(line)
    m = body["meta"]
    meta = BatchMeta(m["batch_id"], m["producer_id"], int(m["seq"]), m["fetched_at"], m["source"])
    return Batch(meta=meta, info=body["info"], results=body["results"])
