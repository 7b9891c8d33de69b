"""Random User API client: one validated response per call, retried patiently.

A response is published only when it is what it claims to be (HTTP 200, a JSON
object, a non-empty `results` array whose length `info.results` announces);
anything else is a `FetchError` with a reason code that the logs and the
`producer_fetch_failures_total{reason}` metric carry. Transient failures
(connection, timeout, 5xx, 429, a garbled body) are retried forever with
exponential backoff and full jitter capped at `backoff_max_s`; a 429 waits as long
as its Retry-After asks. The producer never spins and never exits on them.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
import requests
import tenacity

log = logging.getLogger(__name__)

# Reason codes (stable: dashboards and alerts use them).
CONNECTION = "connection"
TIMEOUT = "timeout"
HTTP_5XX = "http_5xx"
RATE_LIMITED = "rate_limited"
HTTP_STATUS = "http_status"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_RESULTS = "missing_results"
EMPTY_RESULTS = "empty_results"
INFO_MISMATCH = "info_mismatch"
BODY_TOO_LARGE = "body_too_large"

# The API's largest answer (5,000 users) is ~5.5 MB; a body past this is no answer of it (an
# endless stream, a decompression bomb) and is not read further: memory stays bounded.
MAX_BODY_BYTES = 64 * 1024 * 1024
# The read timeout bounds each wait for bytes; this bounds the whole body, so a server that
# trickles a byte now and then cannot hold a fetch forever.
BODY_DEADLINE_READ_TIMEOUTS = 4


class FetchError(Exception):
    """A call that produced nothing publishable, with the reason why."""

    def __init__(self, reason: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s

    @property
    def unanswered(self) -> bool:
        """The service did not answer at all (the auto source switches to local)."""
        return self.reason in (CONNECTION, TIMEOUT)


@dataclass(frozen=True)
class Response:
    document: dict[str, Any]
    latency_s: float
    size_bytes: int


def validate(status: int, body: bytes, content_type: str = "") -> dict[str, Any]:
    """The parsed document, or a FetchError saying what is wrong with it."""
    if status == 429:
        raise FetchError(RATE_LIMITED, f"HTTP 429: {body[:200]!r}")
    if 500 <= status <= 599:
        raise FetchError(HTTP_5XX, f"HTTP {status} ({content_type or 'no content type'})")
    if status != 200:
        raise FetchError(HTTP_STATUS, f"HTTP {status}")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise FetchError(
            INVALID_JSON, f"body is not JSON ({exc.__class__.__name__}): {body[:80]!r}"
        ) from None
    # JSON that Python reads but no encoder writes back: half a UTF-16 surrogate pair escaped
    # alone (`\ud800`: no character), an integer past 64 bits, nesting over 255 deep. The
    # batch could never be sent; the producer died on it (a TypeError in orjson). Rejected
    # here, where it enters: one encode, a tenth of the parse (14 ms against 130 ms for 5,000
    # users on a slow day), on the API path only.
    try:
        orjson.dumps(document)
    except TypeError as exc:
        raise FetchError(INVALID_JSON, f"body holds a value that cannot be sent ({exc})") from None
    if not isinstance(document, dict):
        raise FetchError(NOT_AN_OBJECT, f"body is a JSON {type(document).__name__}, not an object")
    if "error" in document and "results" not in document:
        raise FetchError(MISSING_RESULTS, f"service error: {str(document['error'])[:200]}")
    results = document.get("results")
    if not isinstance(results, list):
        raise FetchError(MISSING_RESULTS, "no `results` array")
    if not results:
        raise FetchError(EMPTY_RESULTS, "`results` is empty")
    info = document.get("info")
    announced = info.get("results") if isinstance(info, dict) else None
    if announced != len(results):
        raise FetchError(INFO_MISMATCH, f"info.results={announced!r} but {len(results)} users came")
    return document


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


class Backoff(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, a tenacity wait strategy.

    The n-th failure in a row waits uniform(base/10, min(cap, base * 2**(n-1))) seconds
    (tenacity's wait_random_exponential; at least a tenth of the base: never a tight
    loop). A Retry-After the service sent (FetchError.retry_after_s) wins, even past the cap.
    """

    def __init__(self, base_s: float, max_s: float) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self._jitter = tenacity.wait_random_exponential(multiplier=base_s, max=max_s, min=base_s / 10)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        return self._obey(exc.retry_after_s if isinstance(exc, FetchError) else None, retry_state)

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """The wait after failure `attempt` (0 = the first) outside a tenacity loop: the
        publisher's pump, which must never block (docs/PRODUCER.md)."""
        state = tenacity.RetryCallState(_NO_LOOP, fn=None, args=(), kwargs={})
        state.attempt_number = attempt + 1
        return self._obey(retry_after_s, state)

    def _obey(self, retry_after_s: float | None, retry_state: tenacity.RetryCallState) -> float:
        jittered = self._jitter(retry_state)
        # The service said how long; it may exceed our cap, and we obey it.
        return jittered if retry_after_s is None else max(retry_after_s, jittered)


_NO_LOOP = tenacity.Retrying()


class ApiClient:
    """GET {api_url}?results=N[&nat=..][&seed=..&page=..] with connect and read timeouts."""

    def __init__(
        self,
        api_url: str,
        results: int,
        nationalities: tuple[str, ...] = (),
        seed: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        session: requests.Session | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.api_url = api_url
        self.max_body_bytes = max_body_bytes
        self.results = results
        self.nationalities = nationalities
        self.seed = seed
        self.timeouts = (connect_timeout_s, read_timeout_s)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "random-user-analytics-producer/1.0"
        self.page = 0

    def params(self) -> dict[str, str]:
        params = {"results": str(self.results)}
        if self.nationalities:
            params["nat"] = ",".join(self.nationalities)
        if self.seed:
            # With a seed, successive pages give different but reproducible users.
            params["seed"] = self.seed
            params["page"] = str(self.page + 1)
        return params

    def fetch(self) -> Response:
        started = time.monotonic()
        try:
            with self.session.get(
                self.api_url, params=self.params(), timeout=self.timeouts, stream=True
            ) as reply:
                body = self._body(reply, started)
        except requests.Timeout as exc:
            raise FetchError(
                TIMEOUT, f"no answer within {self.timeouts} s ({exc.__class__.__name__})"
            ) from None
        except requests.RequestException as exc:
            raise FetchError(CONNECTION, f"{exc.__class__.__name__}: {str(exc)[:200]}") from None
        latency = time.monotonic() - started
        try:
            document = validate(reply.status_code, body, reply.headers.get("Content-Type", ""))
        except FetchError as exc:
            if exc.reason in (RATE_LIMITED, HTTP_5XX):
                exc.retry_after_s = retry_after_seconds(reply.headers.get("Retry-After"))
            raise
        self.page += 1
        return Response(document=document, latency_s=latency, size_bytes=len(body))

    def _body(self, reply: requests.Response, started: float) -> bytes:
        """The whole body (decompressed), at most max_body_bytes, within the body's deadline.

        A read waits for a whole chunk, so the deadline cannot be checked between reads: a
        timer shuts the connection's socket down when it passes, which ends the read waiting
        for bytes, and the fetch with it.
        """
        deadline_s = self.timeouts[1] * BODY_DEADLINE_READ_TIMEOUTS
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            sock = getattr(getattr(reply.raw, "connection", None), "sock", None)
            if sock is not None:  # closing alone would wait for the read to return
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            reply.close()

        timer = threading.Timer(max(0.0, deadline_s - (time.monotonic() - started)), expire)
        timer.daemon = True
        timer.start()
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in reply.iter_content(chunk_size=65_536):
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise FetchError(
                        BODY_TOO_LARGE, f"body over {self.max_body_bytes} bytes: not read further"
                    )
                chunks.append(chunk)
        except FetchError:
            raise
        except Exception:
            if not expired.is_set():
                raise
        finally:
            timer.cancel()
        if expired.is_set():
            raise FetchError(TIMEOUT, f"body not complete within {deadline_s:g} s ({size} bytes read)")
        return b"".join(chunks)


class _Stopping(Exception):
    """The producer is stopping while it waits for the next attempt."""


def fetch_with_retries(
    client: ApiClient,
    backoff: Backoff,
    wait: Callable[[float], bool],
    on_failure: Callable[[FetchError, float], None],
    give_up: Callable[[FetchError], bool] = lambda _: False,
) -> Response | None:
    """Fetch until a valid response; None if `wait` says stop or `give_up` says so.

    tenacity retries every FetchError without end (other errors are bugs: raised) with
    `backoff`; `wait(seconds)` sleeps and returns True when the producer is stopping (it
    keeps the publisher pumping meanwhile); `on_failure(error, delay)` logs and counts.
    """

    def sleep(seconds: float) -> None:
        if wait(seconds):
            raise _Stopping

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert isinstance(exc, FetchError)
        on_failure(exc, state.upcoming_sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, FetchError) and not give_up(exc)),
        wait=backoff,
        stop=tenacity.stop_never,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(client.fetch)
    except (_Stopping, FetchError):  # a FetchError that is not retried: give_up said so
        return None
