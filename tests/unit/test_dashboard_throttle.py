"""Dashboard login throttle (per user name, per client) and the alert banner's escaping."""

from __future__ import annotations

from dashboard import alerts_view
from dashboard.auth import LoginThrottle, ThrottlePolicy


class Clock:
    """A settable monotonic clock: the throttle's waits are checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(
        user_policy=ThrottlePolicy(free=3, base_s=2.0, max_s=30.0, forget_after_s=600.0),
        client_policy=ThrottlePolicy(free=6, base_s=1.0, max_s=10.0, forget_after_s=600.0),
        clock=clock,
    )


def test_failures_on_one_user_lock_it_exponentially_up_to_the_cap() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    locks = []
    for _ in range(8):
        assert throttle.retry_after("operator", "10.0.0.1") == 0.0
        locks.append(throttle.failed("operator", "10.0.0.1"))
        clock.now += locks[-1]  # the next attempt comes exactly when allowed
    # Free failures, then 2, 4, 8, 16 s, then the 30 s cap; the client's own limit (6 free,
    # capped at 10 s) is below the user's from the 6th failure on.
    assert locks == [0.0, 0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_locked_user_is_locked_from_every_client_and_others_are_not() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(3):
        throttle.failed("operator", "10.0.0.1")
    assert throttle.retry_after("operator", "10.0.0.1") == 2.0
    assert throttle.retry_after("operator", "10.0.0.2") == 2.0  # per user: the address does not matter
    assert throttle.retry_after("viewer", "10.0.0.2") == 0.0
    clock.now += 1.5
    assert throttle.retry_after("operator", "10.0.0.2") == 0.5
    clock.now += 0.5
    assert throttle.retry_after("operator", "10.0.0.2") == 0.0


def test_one_client_spraying_many_names_is_locked() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    locks = [throttle.failed(f"user{i}", "10.0.0.9") for i in range(8)]
    assert locks == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 4.0]
    assert throttle.retry_after("somebody-else", "10.0.0.9") == 4.0
    assert throttle.retry_after("somebody-else", "10.0.0.10") == 0.0


def test_success_clears_the_user_and_quiet_time_forgets_the_failures() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    throttle.failed("operator", "a")
    throttle.failed("operator", "a")
    throttle.succeeded("operator")
    assert [throttle.failed("operator", "a") for _ in range(3)] == [0.0, 0.0, 2.0]  # counted afresh
    clock.now += 601  # lock expired and nothing for longer than forget_after_s
    assert throttle.retry_after("operator", "a") == 0.0
    assert throttle.failed("operator", "a") == 0.0


def test_the_store_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_keys=10, clock=clock)
    for i in range(100):
        throttle.failed(f"name{i}", "c")
    assert len(throttle._records) == 10


def test_a_stack_trace_becomes_one_escaped_line() -> None:
    alert = {
        "severity": "critical",
        "summary": "job exited 1: Lost task in stage 3.0 (TID 7) at $anonfun$run$1 "
        "*boom* [x](http://e) :red[y]\n"
        "\tat org.apache.spark.sql.execution.streaming.MicroBatchExecution.$anonfun$runActivatedStream$2\n",
        "details": {"pid": 42},
    }
    assert alerts_view.banner("restarts:job`x", alert) == (
        "Alert critical `restarts:job'x`: job exited 1\\: Lost task in stage 3\\.0 \\(TID 7\\) at "
        "\\$anonfun\\$run\\$1 \\*boom\\* \\[x\\]\\(http\\:\\/\\/e\\) \\:red\\[y\\]"
    )
    long = alerts_view.banner("r", {"severity": "warning", "summary": "x" * 500})
    assert long == "Alert warning `r`: " + "x" * 159 + "…"
    assert alerts_view.details(
        "restarts:job", {**alert, "state": "firing", "at": "2026-11-30T01:00:00+00:00"}
    ) == (
        "rule: restarts:job\nseverity: critical\nstate: firing\nat: 2026-11-30T01:00:00+00:00\nsummary:\n"
        + str(alert["summary"])
        + '\ndetails:\n{\n  "pid": 42\n}'
    )
