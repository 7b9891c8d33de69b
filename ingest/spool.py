"""Disk spool: batches that Kafka could not take yet, safe across restarts.

JSON lines (one unsplit message value per line), each append flushed and
fsync'd before the batch counts as spooled. `<id>.spool.done` records the byte
offset up to which every line was confirmed by Kafka, so a restart re-sends
only the rest (a batch confirmed just before a crash may be sent again, with
the same identity, which downstream deduplicates). Lines are read back oldest
first; when everything is confirmed the file is truncated.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

from ingest.envelope import Batch, from_record, to_record

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: Path, producer_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{producer_id}.spool.jsonl"
        self._done_path = directory / f"{producer_id}.spool.done"
        self.rejected_path = directory / f"{producer_id}.rejected.jsonl"
        self.path.touch(exist_ok=True)
        self._drop_torn_tail()
        done = self._done_path.read_text().strip() if self._done_path.exists() else ""
        self._base = min(int(done or 0), self.path.stat().st_size)
        self._read = self._base
        # line start offset -> (end offset, confirmed)
        self._outstanding: OrderedDict[int, tuple[int, bool]] = OrderedDict()
        self.pending = self._count_lines(self._base)
        if self.pending:
            log.info("spool %s holds %d unconfirmed batches from a previous run", self.path, self.pending)

    def _drop_torn_tail(self) -> None:
        """Cut a last line a crash left half written: its batch never counted as spooled (the
        append returns after the fsync), and a later append would glue a whole line to it."""
        size = self.path.stat().st_size
        with open(self.path, "r+b") as handle:
            handle.seek(max(0, size - 1))
            if size == 0 or handle.read(1) == b"\n":
                return
            keep, end = 0, size
            while end > 0:  # back to the last whole line's end, a window at a time
                start = max(0, end - 65_536)
                handle.seek(start)
                cut = handle.read(end - start).rfind(b"\n")
                if cut >= 0:
                    keep = start + cut + 1
                    break
                end = start
            handle.truncate(keep)
            os.fsync(handle.fileno())
        log.warning(
            "spool %s: cut a torn last line of %d bytes (a crash while spooling)", self.path, size - keep
        )

    def _count_lines(self, start: int) -> int:
        with open(self.path, "rb") as handle:
            handle.seek(start)
            return sum(1 for line in handle if line.strip())

    def append(self, batch: Batch) -> None:
        _append_line(self.path, batch)
        self.pending += 1

    def reject(self, batch: Batch, spool_id: int | None) -> Path:
        """Keep a batch that can never be sent in `<id>.rejected.jsonl`, out of the queue.

        Written and fsync'd before the batch leaves the spool: nothing is dropped, and a
        restart does not read it again (it would fail again: a spool that crashes every start).
        """
        _append_line(self.rejected_path, batch)
        if spool_id is not None:
            self.confirm(spool_id)
        return self.rejected_path

    def has_unread(self) -> bool:
        return self._read < self.path.stat().st_size

    def read_next(self) -> tuple[int, Batch] | None:
        """The oldest batch not handed out yet, with its spool id."""
        while True:  # past blank lines and lines that are no batch, however many
            with open(self.path, "rb") as handle:
                handle.seek(self._read)
                line = handle.readline()
            if not line.endswith(b"\n"):
                return None  # nothing, or a torn last line being written
            start = self._read
            self._read += len(line)
            if not line.strip():
                continue
            self._outstanding[start] = (self._read, False)
            try:
                return start, from_record(line)
            except (ValueError, KeyError, TypeError) as exc:  # orjson's decode error is a ValueError
                # A line that is no batch (a damaged disk, a hand edit): kept, said, and skipped;
                # raised, it would stop the producer at every start.
                log.error(
                    "spool %s: the line at byte %d is not a batch (%s: %s): kept in %s, not sent",
                    self.path,
                    start,
                    exc.__class__.__name__,
                    exc,
                    self.rejected_path,
                )
                _append_bytes(self.rejected_path, line)
                self.confirm(start)

    def confirm(self, spool_id: int) -> None:
        """Kafka confirmed this line; advance the confirmed prefix."""
        end, _ = self._outstanding[spool_id]
        self._outstanding[spool_id] = (end, True)
        self.pending -= 1
        advanced = False
        while self._outstanding:
            first, (first_end, confirmed) = next(iter(self._outstanding.items()))
            if not confirmed:
                break
            del self._outstanding[first]
            self._base = first_end
            advanced = True
        if not advanced:
            return
        if not self._outstanding and self._base >= self.path.stat().st_size:
            with open(self.path, "r+b") as handle:
                handle.truncate(0)
                os.fsync(handle.fileno())
            self._base = self._read = 0
        self._write_done()

    def _write_done(self) -> None:
        tmp = self._done_path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            handle.write(str(self._base))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._done_path)


def _append_line(path: Path, batch: Batch) -> None:
    _append_bytes(path, to_record(batch) + b"\n")


def _append_bytes(path: Path, line: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
