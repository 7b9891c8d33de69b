"""Response validation, reasons, Retry-After and backoff of the API client."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from ingest import api_client as api
from ingest.api_client import Backoff, FetchError, Response, fetch_with_retries, retry_after_seconds, validate


def test_every_fixture_response_is_valid(fixtures_dir: Path) -> None:
    for path in sorted(fixtures_dir.glob("nat-*.json")) + sorted(fixtures_dir.glob("mixed-*.json")):
        body = path.read_bytes()
        assert validate(200, body, "application/json") == json.loads(body), path.name


def _reason(status: int, body: bytes, content_type: str = "") -> str:
    with pytest.raises(FetchError) as info:
        validate(status, body, content_type)
    return info.value.reason


def test_rejections_carry_their_reason(fixtures_dir: Path) -> None:
    good = json.loads((fixtures_dir / "nat-GB.json").read_text())
    mismatch = dict(good, info=dict(good["info"], results=11))
    big = json.loads(json.dumps(good))
    big["results"][0]["location"]["postcode"] = 10**30
    cases = {
        "429": (429, (fixtures_dir / "error-429.json").read_bytes()),
        "503 html": (503, (fixtures_dir / "error-503.html").read_bytes()),
        "500": (500, b"oops"),
        "404": (404, b"{}"),
        "html with 200": (200, (fixtures_dir / "error-503.html").read_bytes()),
        "not utf-8": (200, b"\xff\xfe{"),
        "half a surrogate pair": (
            200,
            json.dumps(good).replace(good["results"][0]["email"], "\\ud800").encode(),
        ),
        "an integer past 64 bits": (200, json.dumps(big).encode()),
        "nested 300 deep": (200, json.dumps(dict(good, extra=json.loads("[" * 300 + "]" * 300))).encode()),
        "nested 50,000 deep": (200, b'{"results": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}"),
        "a list": (200, b"[1, 2]"),
        "error body": (200, (fixtures_dir / "error-429.json").read_bytes()),
        "no results": (200, json.dumps({"info": good["info"]}).encode()),
        "results not a list": (200, json.dumps({"results": {}, "info": good["info"]}).encode()),
        "empty results": (200, json.dumps({"results": [], "info": dict(good["info"], results=0)}).encode()),
        "no info": (200, json.dumps({"results": good["results"]}).encode()),
        "info mismatch": (200, json.dumps(mismatch).encode()),
    }
    reasons = {name: _reason(status, body) for name, (status, body) in cases.items()}
    assert reasons == {
        "429": api.RATE_LIMITED,
        "503 html": api.HTTP_5XX,
        "500": api.HTTP_5XX,
        "404": api.HTTP_STATUS,
        "html with 200": api.INVALID_JSON,
        "not utf-8": api.INVALID_JSON,
        "half a surrogate pair": api.INVALID_JSON,
        "an integer past 64 bits": api.INVALID_JSON,
        "nested 300 deep": api.INVALID_JSON,
        "nested 50,000 deep": api.INVALID_JSON,
        "a list": api.NOT_AN_OBJECT,
        "error body": api.MISSING_RESULTS,
        "no results": api.MISSING_RESULTS,
        "results not a list": api.MISSING_RESULTS,
        "empty results": api.EMPTY_RESULTS,
        "no info": api.INFO_MISMATCH,
        "info mismatch": api.INFO_MISMATCH,
    }
    emoji = json.loads(json.dumps(good))
    emoji["results"][0]["name"]["first"] = "\U0001f600 Ann"
    assert validate(200, json.dumps(emoji).encode()) == emoji  # escaped as a whole pair: a character


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 27, 23, 40, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert [
        retry_after_seconds("120"),
        retry_after_seconds(later, now=now.timestamp()),
        retry_after_seconds(None),
        retry_after_seconds("soon"),
    ] == [120.0, 90.0, None, None]


def test_backoff_is_jittered_capped_and_never_zero() -> None:
    backoff = Backoff(base_s=1.0, max_s=60.0)
    delays = [backoff.delay(attempt) for attempt in range(40) for _ in range(50)]
    assert min(delays) >= 0.1
    assert max(delays) <= 60.0
    # Full jitter: late attempts spread over the whole range up to the cap.
    late = [backoff.delay(30) for _ in range(2000)]
    assert min(late) < 10 and max(late) > 50


def test_rate_limit_waits_as_long_as_the_service_asks() -> None:
    backoff = Backoff(base_s=1.0, max_s=60.0)
    assert backoff.delay(0, retry_after_s=300.0) == 300.0


class _Flaky:
    """An ApiClient stand-in: raises its errors in turn, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def fetch(self) -> Response:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return Response(document={"results": [{}]}, latency_s=0.0, size_bytes=2)


def test_fetch_retries_every_rejection_with_the_backoff_until_a_response() -> None:
    client = _Flaky(FetchError(api.TIMEOUT, "x"), FetchError(api.RATE_LIMITED, "y", retry_after_s=90.0))
    failures: list[tuple[str, float]] = []
    waited: list[float] = []

    def wait(seconds: float) -> bool:
        waited.append(seconds)
        return False  # not stopping

    response = fetch_with_retries(
        client,  # type: ignore[arg-type]
        Backoff(base_s=1.0, max_s=60.0),
        wait=wait,
        on_failure=lambda exc, delay: failures.append((exc.reason, delay)),
    )
    assert response is not None and client.calls == 3
    assert [r for r, _ in failures] == [api.TIMEOUT, api.RATE_LIMITED]
    assert 0.1 <= failures[0][1] <= 1.0 and failures[1][1] == 90.0  # Retry-After obeyed
    assert waited == [d for _, d in failures]


def test_fetch_returns_none_when_stopping_or_giving_up_and_raises_a_bug() -> None:
    backoff = Backoff(base_s=1.0, max_s=60.0)
    stopping = _Flaky(FetchError(api.HTTP_5XX, "x"), FetchError(api.HTTP_5XX, "x"))
    assert fetch_with_retries(stopping, backoff, lambda _s: True, lambda e, d: None) is None  # type: ignore[arg-type]
    assert stopping.calls == 1
    unanswered = _Flaky(FetchError(api.CONNECTION, "refused"))
    assert (
        fetch_with_retries(
            unanswered,  # type: ignore[arg-type]
            backoff,
            lambda _s: False,
            lambda e, d: pytest.fail("a given-up error is no retry"),
            give_up=lambda e: e.unanswered,
        )
        is None
    )
    with pytest.raises(KeyError):
        fetch_with_retries(_Flaky(KeyError("bug")), backoff, lambda _s: False, lambda e, d: None)  # type: ignore[arg-type]


def test_auto_switch_only_when_the_service_does_not_answer() -> None:
    unanswered = {
        r
        for r in (api.CONNECTION, api.TIMEOUT, api.HTTP_5XX, api.RATE_LIMITED, api.INVALID_JSON)
        if FetchError(r, "x").unanswered
    }
    assert unanswered == {api.CONNECTION, api.TIMEOUT}
