"""jobs.retry.with_retries: failures are retried with capped backoff, hung calls are detected."""

from __future__ import annotations

import threading
import time

import pytest

from common import job_settings
from common import settings as common_settings
from jobs.io import retry


def test_a_failing_sink_is_retried_with_doubling_capped_delays_until_it_succeeds() -> None:
    calls: list[int] = []
    delays: list[float] = []

    def action() -> str:
        calls.append(1)
        if len(calls) < 5:
            raise ConnectionError("Cassandra down")
        return "written"

    assert (
        retry.with_retries("cassandra", action, base_delay=1, max_delay=4, sleep=delays.append) == "written"
    )
    assert (len(calls), delays) == (5, [1, 2, 4, 4])


def test_a_call_that_hangs_past_the_stall_timeout_is_reported_once_and_a_fast_one_never() -> None:
    stalled: list[tuple[str, float]] = []
    reported = threading.Event()

    def on_stall(name: str, seconds: float) -> None:
        stalled.append((name, seconds))
        reported.set()

    def hang() -> str:
        assert reported.wait(10), "the stall was never reported"
        return "finally"

    assert retry.with_retries("mongo", hang, stall_timeout=0.2, on_stall=on_stall) == "finally"
    assert retry.with_retries("fast", lambda: 1, stall_timeout=0.2, on_stall=on_stall) == 1
    time.sleep(0.4)  # the fast call's timer was cancelled: nothing more is reported
    assert stalled == [("mongo", 0.2)]


def test_the_stall_timeout_is_a_validated_setting() -> None:
    base = dict(common_settings.load().env)
    assert job_settings.from_settings(common_settings.from_mapping(base)).sink_stall_timeout_s == int(
        base.get("SINK_STALL_TIMEOUT_S") or 600
    )
    bad = common_settings.from_mapping({**base, "SINK_STALL_TIMEOUT_S": "5"})
    with pytest.raises(common_settings.SettingsError, match=r"SINK_STALL_TIMEOUT_S=5 is outside 30\.\.86400"):
        job_settings.from_settings(bad)
