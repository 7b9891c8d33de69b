"""Prometheus metrics of the producer, served on 127.0.0.1 only.

A registry per producer (not the global one) so that tests and benchmarks can
run several producers in one process.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

log = logging.getLogger(__name__)


class ProducerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches_fetched = Counter(
            "producer_batches_fetched", "Valid batches fetched", ["source"], registry=r
        )
        self.users_fetched = Counter(
            "producer_users_fetched", "Users in valid batches", ["source"], registry=r
        )
        self.batches_published = Counter(
            "producer_batches_published", "Batches Kafka confirmed (all parts)", registry=r
        )
        self.users_published = Counter("producer_users_published", "Users in confirmed batches", registry=r)
        self.bytes_published = Counter(
            "producer_bytes_published", "Message bytes Kafka confirmed", registry=r
        )
        self.fetch_failures = Counter(
            "producer_fetch_failures", "API calls that gave nothing publishable", ["reason"], registry=r
        )
        self.publish_failures = Counter(
            "producer_publish_failures", "Kafka send attempts that failed", ["reason"], registry=r
        )
        self.retries = Counter(
            "producer_retries", "Retries (API calls and Kafka re-sends)", ["target"], registry=r
        )
        self.batches_spooled = Counter(
            "producer_batches_spooled", "Batches written to the disk spool", registry=r
        )
        self.pending_batches = Gauge("producer_pending_batches", "Batches in memory or in flight", registry=r)
        self.spool_batches = Gauge(
            "producer_spool_batches", "Batches in the spool not yet confirmed", registry=r
        )
        self.kafka_up = Gauge("producer_kafka_up", "1 while Kafka accepts batches", registry=r)
        self.fetch_latency = Gauge(
            "producer_last_fetch_latency_seconds", "Latency of the last fetch", registry=r
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        if port:
            start_http_server(port, addr=host, registry=self.registry)
            log.info("metrics on http://%s:%d/metrics", host, port)
