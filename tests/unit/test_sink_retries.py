"""jobs.retry.with_retries: failures are retried with capped backoff, hung calls are detected."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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


class Stalls:
    """An on_stall that records (name, seconds, when) and a write that hangs until the first."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float, float]] = []
        self.reported = threading.Event()

    def __call__(self, name: str, seconds: float) -> None:
        self.seen.append((name, seconds, time.monotonic()))
        self.reported.set()

    def hung_write(self) -> str:
        assert self.reported.wait(10), "the hang was never reported"
        self.reported.clear()
        return "finally"


def _check(seconds: float, busy: bool, servers_up: Callable[[], bool]) -> retry.HangCheck:
    return retry.HangCheck(seconds, busy=lambda: busy, servers_up=servers_up, interval=0.05, probe_every=0.1)


def test_a_write_that_runs_no_spark_job_while_the_servers_answer_is_reported_as_hung_early() -> None:
    stalls = Stalls()
    started = time.monotonic()
    result = retry.with_retries(
        "cassandra_users",
        stalls.hung_write,
        stall_timeout=600,
        on_stall=stalls,
        hang=_check(0.3, False, lambda: True),
    )
    # Reported after the hang check's 0.3 s, not the stall timeout's 600 s; once only.
    assert (result, [name for name, _, _ in stalls.seen]) == ("finally", ["cassandra_users"])
    assert 0.3 <= stalls.seen[0][2] - started < 5


def test_a_write_whose_spark_jobs_run_or_whose_server_is_down_is_not_hung() -> None:
    stalls = Stalls()
    for check in (_check(0.2, True, lambda: True), _check(0.2, False, lambda: False)):
        write = lambda: time.sleep(0.8) or 1  # noqa: E731
        assert retry.with_retries("w", write, stall_timeout=600, on_stall=stalls, hang=check) == 1
    assert stalls.seen == []


def test_once_the_server_is_back_the_hang_clock_starts_again() -> None:
    stalls = Stalls()
    back_at = time.monotonic() + 0.6  # the server is down for the write's first 0.6 s
    hang = _check(0.4, False, lambda: time.monotonic() >= back_at)
    retry.with_retries("w", stalls.hung_write, stall_timeout=600, on_stall=stalls, hang=hang)
    # Not at 0.4 s (the server was down then), but 0.4 s of idling after the last probe that
    # found it down (at most probe_every before it came back).
    assert len(stalls.seen) == 1 and stalls.seen[0][2] >= back_at + 0.3


def test_the_hang_timeout_is_a_validated_setting_and_zero_turns_it_off() -> None:
    base = dict(common_settings.load().env)
    off = common_settings.from_mapping({**base, "SINK_HANG_TIMEOUT_S": "0"})
    assert job_settings.from_settings(off).sink_hang_timeout_s == 0
    bad = common_settings.from_mapping({**base, "SINK_HANG_TIMEOUT_S": "-1"})
    with pytest.raises(common_settings.SettingsError, match=r"SINK_HANG_TIMEOUT_S=-1"):
        job_settings.from_settings(bad)


def test_a_hang_check_that_fails_reports_nothing_and_keeps_the_stall_timeout() -> None:
    stalls = Stalls()

    def broken() -> bool:
        raise RuntimeError("py4j: the JVM is gone")

    for busy, up in ((broken, lambda: True), (lambda: False, broken)):
        hang = retry.HangCheck(0.1, busy=busy, servers_up=up, interval=0.05, probe_every=0.05)
        retry.with_retries("w", stalls.hung_write, stall_timeout=1.0, on_stall=stalls, hang=hang)
    # Neither failing question made a hang of it; the stall timeout (1 s) still fired, twice.
    assert [seconds for _, seconds, _ in stalls.seen] == [1.0, 1.0]
