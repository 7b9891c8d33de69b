"""The API client reads a bounded body: no answer of the API is larger than a few MB, so an
endless stream, a decompression bomb or a server that trickles bytes ends the fetch with a
reason instead of filling memory or holding the producer forever. A real HTTP server on
127.0.0.1 answers (the API itself is not reachable here)."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest import api_client as api
from ingest.api_client import ApiClient, FetchError

LIMIT = 1_000_000


@contextmanager
def _server(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                answer(self)  # the client may stop reading: what is under test

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.shutdown()
        server.server_close()


def _endless(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b" " * 65_536
    while True:
        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def _bomb(h: BaseHTTPRequestHandler) -> None:
    body = gzip.compress(b'{"results": [' + b" " * (20 * LIMIT) + b"]}")  # ~20 KB on the wire
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Encoding", "gzip")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


class _Trickle:
    """1,000 bytes announced, one every 50 ms: each comes within the read timeout, the whole
    body within 50 s. Counts what it wrote; stops when told (the test is over)."""

    def __init__(self) -> None:
        self.written = 0
        self.stop = threading.Event()

    def __call__(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "1000")
        h.end_headers()
        while self.written < 1000 and not self.stop.wait(0.05):
            h.wfile.write(b" ")
            h.wfile.flush()
            self.written += 1


def _fetch(url: str, read_timeout_s: float = 5.0) -> FetchError:
    client = ApiClient(url, 10, read_timeout_s=read_timeout_s, max_body_bytes=LIMIT)
    with pytest.raises(FetchError) as info:
        client.fetch()
    return info.value


def test_an_endless_body_is_not_read_past_the_limit() -> None:
    with _server(_endless) as url:
        error = _fetch(url)
    assert (error.reason, error.detail) == (api.BODY_TOO_LARGE, f"body over {LIMIT} bytes: not read further")


def test_a_decompression_bomb_is_not_inflated_past_the_limit() -> None:
    with _server(_bomb) as url:
        error = _fetch(url)
    assert (error.reason, error.detail) == (api.BODY_TOO_LARGE, f"body over {LIMIT} bytes: not read further")


def test_a_trickling_body_ends_at_the_body_deadline() -> None:
    trickle = _Trickle()
    with _server(trickle) as url:
        error = _fetch(url, read_timeout_s=0.25)  # the body's deadline: 4 read timeouts, 1 s
        written = trickle.written
        trickle.stop.set()
    assert error.reason == api.TIMEOUT and error.detail.startswith("body not complete within 1 s ("), error
    assert written < 1000  # the client gave up before the body was whole


def test_a_body_within_the_limit_is_read_whole(fixtures_dir: Path) -> None:
    body = (fixtures_dir / "nat-GB.json").read_bytes()

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with _server(answer) as url:
        response = ApiClient(url, 10, max_body_bytes=LIMIT).fetch()
    assert (response.document, response.size_bytes) == (json.loads(body), len(body))
