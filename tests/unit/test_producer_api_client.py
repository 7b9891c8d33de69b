"""Response validation, reasons, Retry-After and backoff of the API client."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from ingest import api_client as api
from ingest.api_client import Backoff, FetchError, retry_after_seconds, validate


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
    cases = {
        "429": (429, (fixtures_dir / "error-429.json").read_bytes()),
        "503 html": (503, (fixtures_dir / "error-503.html").read_bytes()),
        "500": (500, b"oops"),
        "404": (404, b"{}"),
        "html with 200": (200, (fixtures_dir / "error-503.html").read_bytes()),
        "not utf-8": (200, b"\xff\xfe{"),
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
        "a list": api.NOT_AN_OBJECT,
        "error body": api.MISSING_RESULTS,
        "no results": api.MISSING_RESULTS,
        "results not a list": api.MISSING_RESULTS,
        "empty results": api.EMPTY_RESULTS,
        "no info": api.INFO_MISMATCH,
        "info mismatch": api.INFO_MISMATCH,
    }


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
    backoff = Backoff(base_s=1.0, max_s=60.0, rng=random.Random(7))
    delays = [backoff.delay(attempt) for attempt in range(40) for _ in range(50)]
    assert min(delays) >= 0.1
    assert max(delays) <= 60.0
    # Full jitter: late attempts spread over the whole range up to the cap.
    late = [backoff.delay(30) for _ in range(2000)]
    assert min(late) < 10 and max(late) > 50


def test_rate_limit_waits_as_long_as_the_service_asks() -> None:
    backoff = Backoff(base_s=1.0, max_s=60.0, rng=random.Random(7))
    assert backoff.delay(0, retry_after_s=300.0) == 300.0


def test_auto_switch_only_when_the_service_does_not_answer() -> None:
    unanswered = {
        r
        for r in (api.CONNECTION, api.TIMEOUT, api.HTTP_5XX, api.RATE_LIMITED, api.INVALID_JSON)
        if FetchError(r, "x").unanswered
    }
    assert unanswered == {api.CONNECTION, api.TIMEOUT}
