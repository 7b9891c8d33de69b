"""Helpers of the producer's integration tests: a real HTTP server and a real Kafka reader."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from common.settings import KafkaSettings

CONSUME_DEADLINE_S = 90  # an upper bound for waiting, never an expectation of speed


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@contextmanager
def api_server(replies: list[Reply]) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server answering with `replies` in order (the last one repeats)."""
    served: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                reply = replies[min(len(served), len(replies) - 1)]
                served.append(self.path)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout case)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/1.4/", served
    finally:
        server.shutdown()
        server.server_close()


def _consumer(k: KafkaSettings) -> KafkaConsumer:
    return KafkaConsumer(
        **k.client_config(k.job),
        group_id=f"{k.job_group_prefix}-test-producer-{uuid.uuid4().hex[:12]}",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )


def end_offsets(k: KafkaSettings) -> dict[TopicPartition, int]:
    consumer = _consumer(k)
    try:
        partitions = [
            TopicPartition(k.topic, p) for p in sorted(consumer.partitions_for_topic(k.topic) or [])
        ]
        assert partitions, f"topic {k.topic} has no partitions"
        return dict(consumer.end_offsets(partitions))
    finally:
        consumer.close()


@dataclass(frozen=True)
class Consumed:
    key: bytes
    value: dict[str, Any]
    headers: list[tuple[str, bytes]]


def consume(
    k: KafkaSettings, since: dict[TopicPartition, int], producer_id: str, count: int
) -> list[Consumed]:
    """Messages of `producer_id` written after `since`, read as the Spark job's user.

    Reads until `count` are found, then drains briefly so that extra (duplicate)
    messages would be seen too.
    """
    consumer = _consumer(k)
    found: list[Consumed] = []
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        quiet_polls = 0
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=1000)
            records = [r for rs in batch.values() for r in rs]
            for r in records:
                value = orjson.loads(r.value)
                if value["meta"]["producer_id"] == producer_id:
                    found.append(Consumed(r.key, value, list(r.headers)))
            if len(found) >= count:
                quiet_polls = quiet_polls + 1 if not records else 0
                if quiet_polls >= 3:
                    break
    finally:
        consumer.close()
    return sorted(found, key=lambda c: (c.value["meta"]["seq"], c.value["meta"]["part"]))


def headers_of(meta: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [
        (name, str(meta[name]).encode())
        for name in ("batch_id", "producer_id", "seq", "fetched_at", "source")
    ]
