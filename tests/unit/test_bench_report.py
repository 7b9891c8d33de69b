"""bench.report: the CPU each process spends per user, and the ceiling it sets, from a run's JSON."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report


def _phase(users: int, drained: float | None, cpu: dict[str, float]) -> dict[str, Any]:
    return {
        "delivered_in_cassandra_latest_users": users,
        "drain_after_stop_s": drained,
        "footprint": {"processes": {role: {"cpu_s": s} for role, s in cpu.items()}},
    }


CPU = {
    "producer": 4.0,
    "kafka": 2.0,
    "spark driver (JVM)": 40.0,
    "spark driver (Python)": 1.0,
    "cassandra": 15.0,
    "mongo server (FerretDB)": 13.0,
    "dashboard": 9.0,  # not the pipeline's per-user work
}
RUN = {
    "machine": {"cpus": 2},
    "phases": {
        "spec": _phase(300, 30.0, CPU),  # too few users to weigh
        "rate_2000": _phase(100_000, 20.0, CPU),
        "rate_5000": _phase(400_000, None, CPU),  # did not drain: its work is not all in the window
    },
}


def test_cpu_per_user_counts_the_pipeline_processes_of_the_drained_phases_only() -> None:
    assert report.cpu_per_user(RUN) == {
        "rate_2000": {
            "producer": pytest.approx(0.04),
            "kafka": pytest.approx(0.02),
            "spark driver (JVM)": pytest.approx(0.4),
            "spark driver (Python)": pytest.approx(0.01),
            "cassandra": pytest.approx(0.15),
            "mongo server (FerretDB)": pytest.approx(0.13),
            "total": pytest.approx(0.75),
            "ceiling_users_s": pytest.approx(2000 / 0.75),
            "servers_ceiling_users_s": pytest.approx(2000 / 0.30),
            "users": 100_000,
        }
    }


def test_cpu_table_renders_one_row_per_weighed_phase() -> None:
    lines = report.cpu_table(RUN)
    rows = [line for line in lines if line.startswith("| rate_")]
    assert rows == [
        "| rate_2000 | 100,000 | 0.040 | 0.020 | 0.400 | 0.010 | 0.150 | 0.130 | **0.750** | 2,667 | 6,667 |"
    ]
    assert lines[0].count("|") == lines[1].count("|")


def test_cpu_table_is_empty_without_a_weighed_phase() -> None:
    assert report.cpu_table({"machine": {"cpus": 2}, "phases": {"spec": _phase(300, 30.0, CPU)}}) == []


def test_the_recovery_line_says_when_the_serving_query_was_back_and_when_every_sink_was() -> None:
    recovery = {
        "rate_users_s": 1000,
        "steady_lag_p90_users": 46_000,
        "steady_lag_p90_users_by_query": {"serving": 9_000, "lake": 46_000},
        "first_batch_after_kill_s": 21.1,
        "serving_caught_up_after_kill_s": 48.5,
        "caught_up_after_kill_s": 129.8,
    }
    lines = report.phases_table({"phases": {}, "recovery": recovery})
    assert lines[-1] == (
        "Recovery at 1,000 users/s: first batch 21.1 s and caught up (lag back to its steady p90, "
        "46,000 users) 129.8 s after the SIGKILL. The serving query alone (the dashboard's tables "
        "and Mongo) was back to its steady lag (9,000 users) 48.5 s after it; the lake's steady "
        "lag is 46,000 users (its trigger and batch)."
    )


def test_the_speed_gauge_is_told_when_the_run_measured_it() -> None:
    gauge = {"generator_users_s": 24_121, "seconds": 5.0, "results_per_call": 500}
    assert report.gauge_sentence({"speed_gauge": gauge}) == (
        " Speed gauge at the start: the producer's generator alone made 24,121 users/s "
        "(500 users a call); compare it before comparing runs."
    )
    assert report.gauge_sentence({}) == ""


def test_recovery_is_judged_twice_the_dashboards_tables_and_every_sink() -> None:
    recovery = {"serving_caught_up_after_kill_s": 38.0, "caught_up_after_kill_s": 141.0}
    rows = [line for line in report.summary({"phases": {}, "recovery": recovery}) if "Recovery" in line]
    assert rows == [
        "| Recovery after SIGKILL, the dashboard's tables (the serving query back to its steady lag) "
        "| ≤ 60.0 s | 38.0 s | yes |",
        "| Recovery after SIGKILL, every sink (both queries back to their steady lag) "
        "| ≤ 60.0 s | 141.0 s | **no** |",
    ]
    older = report.summary({"phases": {}, "recovery": {"caught_up_after_kill_s": 129.8}})
    assert any("not measured (a run before" in line and line.endswith("| — |") for line in older)
