"""Kafka publishing that loses nothing: confirm, retry, spool, split.

A batch counts as sent only when Kafka confirmed every part of it (acks=all, an
idempotent producer, so the client's own retries never duplicate). While Kafka
is unreachable, batches wait in memory up to `memory_bound`, then in the disk
spool; they are sent oldest first, with their original identity, when Kafka
answers again. A batch larger than a message may be is split (never dropped);
if the broker still refuses a part as too large, the part size is halved and the
batch re-split: each user keeps its position (`first_index + i`) in any split.

Single-threaded by design: `pump()` runs on the producer's loop; delivery
callbacks (on kafka-python's sender thread) only put results on a queue.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError

from ingest.api_client import Backoff
from ingest.envelope import Batch, Message, UserTooLarge, messages
from ingest.metrics import ProducerMetrics
from ingest.spool import Spool

log = logging.getLogger(__name__)

_MIN_PART_BYTES = 10_000


@dataclass
class _Entry:
    batch: Batch
    spool_id: int | None = None
    split: list[Message] = field(default_factory=list)
    split_bytes: int = 0
    confirmed_parts: set[int] = field(default_factory=set)
    attempts: int = 0
    outstanding: int = 0
    error: BaseException | None = None


def _reason(exc: BaseException) -> str:
    return type(exc).__name__


class Publisher:
    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        spool: Spool,
        metrics: ProducerMetrics,
        backoff: Backoff,
        memory_bound: int = 100,
        max_request_size: int = 1_048_576,
        max_in_flight: int = 32,
        producer_factory: Callable[..., Any] = KafkaProducer,
    ) -> None:
        self.topic = topic
        self.spool = spool
        self.metrics = metrics
        self.backoff = backoff
        self.memory_bound = memory_bound
        self.part_bytes = max_request_size
        self.max_in_flight = max(1, min(max_in_flight, memory_bound))
        self._config = dict(kafka_config, max_request_size=max_request_size)
        self._factory = producer_factory
        self._producer: Any = None
        self._memory: deque[_Entry] = deque()
        self._inflight: dict[str, _Entry] = {}
        self._events: queue.SimpleQueue[tuple[str, int, int, BaseException | None]] = queue.SimpleQueue()
        self._not_before = 0.0
        self._failures = 0
        self._spooling_logged = False
        self._replace_producer = False
        self.delivered: list[str] = []  # batch ids, in confirmation order (bounded below)
        metrics.spool_batches.set(spool.pending)

    # -- intake ---------------------------------------------------------------
    def submit(self, batch: Batch) -> None:
        """Accept a fetched batch; from here on it is never dropped."""
        held = len(self._memory) + len(self._inflight)
        if self.spool.has_unread() or held >= self.memory_bound:
            if not self._spooling_logged:
                why = "earlier batches wait there" if self.spool.has_unread() else "Kafka is behind"
                log.warning("%s (%d held in memory): spooling batches to %s", why, held, self.spool.path)
                self._spooling_logged = True
            self.spool.append(batch)
            self.metrics.batches_spooled.inc()
            self.metrics.spool_batches.set(self.spool.pending)
        else:
            self._memory.append(_Entry(batch))
        self._gauges()

    @property
    def pending(self) -> int:
        """Batches not yet confirmed (memory, in flight, spool)."""
        in_spool_not_held = self.spool.pending - sum(
            1 for e in (*self._memory, *self._inflight.values()) if e.spool_id is not None
        )
        return len(self._memory) + len(self._inflight) + max(0, in_spool_not_held)

    # -- the loop's work ------------------------------------------------------
    def pump(self) -> None:
        """Handle confirmations, then send what Kafka can take now."""
        self._drain_events()
        now = time.monotonic()
        if now < self._not_before:
            return
        if self._replace_producer and self._producer is not None:
            self._replace_producer = False
            try:
                self._producer.close(timeout=0)
            except Exception as exc:
                log.warning("closing the failed Kafka client: %s", exc)
            self._producer = None
            self._drain_events()
        if self._producer is None and not self._connect():
            return
        while len(self._inflight) < self.max_in_flight and time.monotonic() >= self._not_before:
            entry = self._next_entry()
            if entry is None:
                break
            self._send(entry)
        self._gauges()

    def _connect(self) -> bool:
        try:
            self._producer = self._factory(**self._config)
        except (KafkaError, OSError) as exc:  # no broker answers (yet); a bad setting is not caught
            self._kafka_down(f"cannot connect ({_reason(exc)}: {exc})")
            return False
        log.info("connected to Kafka at %s", self._config.get("bootstrap_servers"))
        self.metrics.kafka_up.set(1)
        return True

    def _kafka_down(self, why: str) -> None:
        delay = self.backoff.delay(self._failures)
        self._failures += 1
        self._not_before = time.monotonic() + delay
        self.metrics.kafka_up.set(0)
        self.metrics.retries.labels("kafka").inc()
        log.warning(
            "Kafka unavailable: %s; retrying in %.1f s (%d batches waiting)", why, delay, self.pending
        )

    def _next_entry(self) -> _Entry | None:
        if self._memory:
            return self._memory.popleft()
        if self.spool.has_unread():
            item = self.spool.read_next()
            if item is not None:
                spool_id, batch = item
                return _Entry(batch, spool_id=spool_id)
        return None

    def _send(self, entry: _Entry) -> None:
        if not entry.split or entry.split_bytes != self.part_bytes:
            if entry.split and entry.split_bytes != self.part_bytes:
                entry.confirmed_parts.clear()  # a new split: positions, not parts, identify users
            try:
                entry.split = messages(entry.batch, self.part_bytes)
            except UserTooLarge as exc:
                self._reject(entry, exc)
                return
            entry.split_bytes = self.part_bytes
        todo = [m for m in entry.split if m.part not in entry.confirmed_parts]
        entry.attempts += 1
        entry.error = None
        entry.outstanding = len(todo)
        batch_id = entry.batch.meta.batch_id
        self._inflight[batch_id] = entry
        for message in todo:
            try:
                future = self._producer.send(
                    self.topic, key=message.key, value=message.value, headers=message.headers
                )
            except Exception as exc:  # KafkaTimeoutError (no metadata), buffer full, closed producer
                self._events.put((batch_id, message.part, len(message.value), exc))
                continue
            future.add_callback(self._on_success, batch_id, message.part, len(message.value))
            future.add_errback(self._on_error, batch_id, message.part, len(message.value))

    def _reject(self, entry: _Entry, exc: UserTooLarge) -> None:
        """A batch no split can send: kept on disk beside the spool, said once, never retried
        (it would stop every batch behind it, and crash every start from the spool)."""
        meta = entry.batch.meta
        path = self.spool.reject(entry.batch, entry.spool_id)
        self.metrics.publish_failures.labels("user_too_large").inc()
        self.metrics.spool_batches.set(self.spool.pending)
        log.error(
            "batch %s seq=%d can never be sent (%s): kept in %s, not published",
            meta.batch_id,
            meta.seq,
            exc,
            path,
        )

    # Called on kafka-python's sender thread: hand over, nothing else.
    def _on_success(self, batch_id: str, part: int, size: int, _metadata: object) -> None:
        self._events.put((batch_id, part, size, None))

    def _on_error(self, batch_id: str, part: int, size: int, exc: BaseException) -> None:
        self._events.put((batch_id, part, size, exc))

    def _drain_events(self) -> None:
        while True:
            try:
                batch_id, part, size, exc = self._events.get_nowait()
            except queue.Empty:
                return
            entry = self._inflight.get(batch_id)
            if entry is None:
                continue
            entry.outstanding -= 1
            if exc is None:
                entry.confirmed_parts.add(part)
                self.metrics.bytes_published.inc(size)
            else:
                entry.error = exc
                self.metrics.publish_failures.labels(_reason(exc)).inc()
                if isinstance(exc, MessageSizeTooLargeError) or "TooLarge" in _reason(exc):
                    smaller = max(_MIN_PART_BYTES, self.part_bytes // 2)
                    if smaller < self.part_bytes:
                        log.warning("Kafka refused a part as too large; parts now <= %d bytes", smaller)
                        self.part_bytes = smaller
                    # kafka-python's idempotent producer treats this refusal as fatal:
                    # it must be replaced (a new producer id) before anything else is sent.
                    self._replace_producer = True
            if entry.outstanding == 0:
                del self._inflight[batch_id]
                self._finish(entry)

    def _finish(self, entry: _Entry) -> None:
        meta = entry.batch.meta
        if entry.error is None and len(entry.confirmed_parts) == len(entry.split):
            self._failures = 0
            self._spooling_logged = False
            self.metrics.kafka_up.set(1)
            self.metrics.batches_published.inc()
            self.metrics.users_published.inc(entry.batch.users)
            if entry.spool_id is not None:
                self.spool.confirm(entry.spool_id)
                self.metrics.spool_batches.set(self.spool.pending)
            self.delivered.append(meta.batch_id)
            if len(self.delivered) > 100_000:
                del self.delivered[:50_000]
            log.debug(
                "published batch %s seq=%d parts=%d attempts=%d",
                meta.batch_id,
                meta.seq,
                len(entry.split),
                entry.attempts,
            )
            return
        # Not confirmed: it goes back to the front, with the same identity, oldest first.
        self._memory.appendleft(entry)
        if len(self._memory) > 1 and self._memory[1].batch.meta.seq < meta.seq:
            self._memory = deque(sorted(self._memory, key=lambda e: e.batch.meta.seq))
        self.metrics.retries.labels("kafka").inc()
        if time.monotonic() < self._not_before:
            return  # already backing off for this outage
        exc = entry.error or KafkaError("unconfirmed")
        if (
            isinstance(exc, KafkaError)
            and not getattr(exc, "retriable", True)
            and "TooLarge" not in _reason(exc)
        ):
            log.error("Kafka rejected batch %s seq=%d: %s; it will be retried", meta.batch_id, meta.seq, exc)
        self._kafka_down(f"batch {meta.batch_id} seq={meta.seq} not confirmed ({_reason(exc)}: {exc})")

    def _gauges(self) -> None:
        self.metrics.pending_batches.set(len(self._memory) + len(self._inflight))

    # -- shutdown -------------------------------------------------------------
    def idle(self) -> bool:
        return not self._memory and not self._inflight and not self.spool.has_unread()

    def close(self, timeout_s: float, wait: Callable[[float], object] = time.sleep) -> int:
        """Deliver what is pending within `timeout_s`; spool the rest. Returns batches spooled."""
        deadline = time.monotonic() + timeout_s
        while not self.idle() and time.monotonic() < deadline:
            if time.monotonic() < self._not_before:
                # Kafka is backing off: do not wait past the deadline for it.
                wait(min(0.05, max(0.0, self._not_before - time.monotonic())))
            self.pump()
            wait(0.01)
        if self._producer is not None:
            try:
                self._producer.close(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("closing the Kafka client: %s", exc)
            self._producer = None
        self._drain_events()
        left = list(self._inflight.values()) + list(self._memory)
        self._inflight.clear()
        self._memory.clear()
        spooled = 0
        for entry in left:
            if entry.spool_id is None:  # those from the spool are still in it
                self.spool.append(entry.batch)
                self.metrics.batches_spooled.inc()
                spooled += 1
        self.metrics.spool_batches.set(self.spool.pending)
        if spooled or self.spool.pending:
            log.warning(
                "Kafka did not confirm %d batches in time: they wait in %s (%d in total) for the next run",
                len(left),
                self.spool.path,
                self.spool.pending,
            )
        else:
            log.info("flushed: every batch confirmed by Kafka")
        return spooled
