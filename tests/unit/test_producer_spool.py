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


def test_a_line_torn_by_a_crash_is_cut_and_the_next_appends_read_back(tmp_path: Path) -> None:
    batches = _batches(3)
    spool = Spool(tmp_path, "p")
    spool.append(batches[0])
    whole = spool.path.read_bytes()
    with open(spool.path, "ab") as handle:  # the crash: half of the next line written
        handle.write(whole[: len(whole) // 2])
    restarted = Spool(tmp_path, "p")
    assert spool.path.read_bytes() == whole and restarted.pending == 1
    restarted.append(batches[1])
    restarted.append(batches[2])
    read = [restarted.read_next() for _ in range(4)]
    assert [item[1] if item else None for item in read] == [*batches, None]


def test_lines_that_are_no_batch_are_kept_aside_and_skipped(tmp_path: Path) -> None:
    batches = _batches(2)
    spool = Spool(tmp_path, "p")
    spool.append(batches[0])
    with open(spool.path, "ab") as handle:  # damaged lines between two good ones
        handle.write(b'{"meta": {"batch_id": 1}, "garbage\n' + b"\n" + b"\xff\n" * 5000)
    spool.append(batches[1])
    restarted = Spool(tmp_path, "p")
    assert restarted.pending == 5003  # the blank line is none
    first, second, last = restarted.read_next(), restarted.read_next(), restarted.read_next()
    assert [first[1] if first else None, second[1] if second else None, last] == [*batches, None]
    assert restarted.rejected_path.read_bytes() == b'{"meta": {"batch_id": 1}, "garbage\n' + b"\xff\n" * 5000
    assert restarted.pending == 2  # the damaged line left the queue; the two batches wait for Kafka
    for item in (first, second):
        assert item is not None
        restarted.confirm(item[0])
    assert restarted.pending == 0 and restarted.path.stat().st_size == 0
