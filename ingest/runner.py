"""The producer's loop: fetch a batch, stamp its identity, hand it to the publisher.

Sources: `api` (the live service), `local` (the bundled generator) and `auto`
(the API; when it does not answer, one clear log line and the local source for
the rest of the run). Every message says which source made it. With `rate`
the local source runs as a load generator at that many users per second; the
publisher's memory bound is its back-pressure.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from common.settings import KafkaSettings
from ingest.api_client import ApiClient, Backoff, FetchError, fetch_with_retries
from ingest.envelope import SequenceCounter, make_batch
from ingest.generator import LocalGenerator
from ingest.metrics import ProducerMetrics
from ingest.publisher import Publisher
from ingest.settings import ProducerSettings
from ingest.spool import Spool

log = logging.getLogger(__name__)


def kafka_config(settings: ProducerSettings, kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python producer settings: safe first (acks=all, idempotence), then fast."""
    return {
        **kafka.client_config(kafka.producer),
        "client_id": settings.producer_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "retries": 50,
        "retry_backoff_ms": 200,
        "delivery_timeout_ms": settings.delivery_timeout_ms,
        "request_timeout_ms": min(30_000, settings.delivery_timeout_ms),
        "max_block_ms": 10_000,
        "bootstrap_timeout_ms": 10_000,
        "reconnect_backoff_max_ms": 5_000,
        "linger_ms": 5,
    }


class Runner:
    def __init__(
        self,
        settings: ProducerSettings,
        kafka: KafkaSettings,
        stop: threading.Event | None = None,
        metrics: ProducerMetrics | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.metrics = metrics or ProducerMetrics()
        self.backoff = Backoff(settings.backoff_base_s, settings.backoff_max_s)
        self.sequence = SequenceCounter(settings.spool_dir, settings.producer_id)
        self.publisher = publisher or Publisher(
            kafka_config(settings, kafka),
            kafka.topic,
            Spool(settings.spool_dir, settings.producer_id),
            self.metrics,
            Backoff(settings.backoff_base_s, settings.backoff_max_s),
            memory_bound=settings.memory_bound,
            max_request_size=settings.max_request_size,
        )
        self.source = settings.source
        self.api = ApiClient(
            settings.api_url,
            settings.results,
            settings.nationalities,
            settings.seed,
            settings.connect_timeout_s,
            settings.read_timeout_s,
        )
        self._generator: LocalGenerator | None = None
        self.batches = 0

    @property
    def generator(self) -> LocalGenerator:
        if self._generator is None:
            s = self.settings
            self._generator = LocalGenerator(s.seed, s.nationalities, s.malformed_rate)
            log.info("local generator seed=%s", self._generator.seed)
        return self._generator

    def wait(self, seconds: float) -> bool:
        """Sleep while keeping the publisher busy; True when the producer must stop."""
        deadline = time.monotonic() + seconds
        while True:
            self.publisher.pump()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.stop.is_set()
            if self.stop.wait(min(0.02, remaining)):
                return True

    # -- sources --------------------------------------------------------------
    def _on_fetch_failure(self, exc: FetchError, delay: float) -> None:
        self.metrics.fetch_failures.labels(exc.reason).inc()
        self.metrics.retries.labels("api").inc()
        log.warning("rejected API response: reason=%s %s; retry in %.1f s", exc.reason, exc.detail, delay)

    def _give_up_on_api(self, exc: FetchError) -> bool:
        if self.source == "auto" and exc.unanswered:
            self.metrics.fetch_failures.labels(exc.reason).inc()
            log.warning(
                "the Random User API at %s does not answer (%s); switching to the local generator",
                self.settings.api_url,
                exc.detail,
            )
            self.source = "local"
            return True
        return False

    def fetch(self) -> tuple[dict[str, Any], str, float, int] | None:
        """(document, source, latency, bytes) or None when stopping."""
        if self.source in ("api", "auto"):
            response = fetch_with_retries(
                self.api, self.backoff, self.wait, self._on_fetch_failure, self._give_up_on_api
            )
            if response is not None:
                return response.document, "api", response.latency_s, response.size_bytes
            if self.stop.is_set() or self.source != "local":
                return None
        started = time.monotonic()
        document = self.generator.document(self.settings.results)
        latency = time.monotonic() - started
        return document, "local", latency, 0

    # -- the loop -------------------------------------------------------------
    def run(self) -> int:
        s = self.settings
        log.info(
            "producer %s: source=%s results=%d %s, topic via %s",
            s.producer_id,
            s.source,
            s.results,
            f"rate={s.rate:g} users/s" if s.rate else f"every {s.interval_s:g} s",
            self.publisher.topic,
        )
        started = time.monotonic()
        next_at = started
        report_at = started + 10
        users = 0
        while not self.stop.is_set():
            if s.max_batches is not None and self.batches >= s.max_batches:
                break
            if s.rate and self.publisher.pending >= s.memory_bound:
                # Load mode: Kafka sets the pace when it cannot take the rate.
                if self.wait(0.005):
                    break
                continue
            now = time.monotonic()
            if now < next_at and self.wait(next_at - now):
                break
            fetch_started = time.monotonic()
            fetched = self.fetch()
            if fetched is None:
                break
            document, source, latency, size = fetched
            batch = make_batch(document, source, s.producer_id, self.sequence.next(), datetime.now(UTC))
            self.batches += 1
            users += batch.users
            self.metrics.batches_fetched.labels(source).inc()
            self.metrics.users_fetched.labels(source).inc(batch.users)
            self.metrics.fetch_latency.set(latency)
            size = size or len(orjson.dumps(batch.results))
            level = logging.DEBUG if s.rate else logging.INFO
            log.log(
                level,
                "batch seq=%d id=%s source=%s users=%d bytes=%d fetch_latency=%.3fs",
                batch.meta.seq,
                batch.meta.batch_id,
                source,
                batch.users,
                size,
                latency,
            )
            self.publisher.submit(batch)
            self.publisher.pump()
            if s.rate:
                next_at += batch.users / s.rate
                if time.monotonic() >= report_at:
                    elapsed = time.monotonic() - started
                    log.info("load: %d users in %.0f s (%.0f users/s)", users, elapsed, users / elapsed)
                    report_at += 10
            else:
                next_at = fetch_started + s.interval_s
        log.info(
            "stopping after %d batches: flushing to Kafka (up to %.0f s)", self.batches, s.flush_timeout_s
        )
        self.publisher.close(s.flush_timeout_s)
        return 0
