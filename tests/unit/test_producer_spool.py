"""The disk spool: oldest first, confirmed prefix survives restarts, emptied when done."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ingest.envelope import Batch, make_batch
from ingest.generator import LocalGenerator
from ingest.spool import Spool


def _batches(n: int) -> list[Batch]:
    generator = LocalGenerator(seed="spool")
    now = datetime(2026, 11, 27, tzinfo=UTC)
    return [make_batch(generator.document(3, now), "local", "p", i, now) for i in range(n)]


def test_spool_round_trip_and_restart(tmp_path: Path) -> None:
    batches = _batches(4)
    spool = Spool(tmp_path, "p")
    for batch in batches:
        spool.append(batch)
    read = [spool.read_next() for _ in range(4)]
    assert spool.read_next() is None
    assert [item[1] for item in read if item is not None] == batches
    ids = [item[0] for item in read if item is not None]
    spool.confirm(ids[1])  # out of order: the prefix does not move yet
    spool.confirm(ids[0])
    assert spool.pending == 2

    restarted = Spool(tmp_path, "p")
    assert restarted.pending == 2
    again = [restarted.read_next(), restarted.read_next()]
    assert [item[1] for item in again if item is not None] == batches[2:]
    for item in again:
        assert item is not None
        restarted.confirm(item[0])
    assert restarted.pending == 0
    assert restarted.path.stat().st_size == 0
    assert Spool(tmp_path, "p").read_next() is None
