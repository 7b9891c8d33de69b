"""The dashboard page (Streamlit AppTest) against real Cassandra rows seeded by the test.

The page runs in-process as the real `dashboard_reader`, in a keyspace of its own
(tests/dashboard_seed.py); every test seeds the tables afresh and logs in through the form.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from cassandra.cluster import Session
from streamlit.testing.v1 import AppTest

from common.clients import cassandra_session
from common.settings import CassandraSettings, Settings
from dashboard import queries
from dashboard.settings import DashboardSettings, Role
from dashboard.settings import load as load_dashboard
from ops.alerts import Alert, AlertStore
from tests import dashboard_seed as seed

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
CHARTS = 7  # countries, ages, genders, age bands, quarantine share, reasons, throughput


@pytest.fixture(scope="module")
def dash_cassandra(stack: Settings) -> Iterator[CassandraSettings]:
    with seed.dashboard_keyspace(stack.cassandra) as settings:
        yield settings


@pytest.fixture(scope="module")
def admin(dash_cassandra: CassandraSettings) -> Iterator[Session]:
    with cassandra_session(dash_cassandra, dash_cassandra.admin, seed.KEYSPACE) as sess:
        yield sess


@pytest.fixture
def app_env(
    dash_cassandra: CassandraSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DashboardSettings]:
    """The page's settings point at the seeded keyspace; caches start empty."""
    monkeypatch.setenv("CASSANDRA_KEYSPACE", seed.KEYSPACE)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield load_dashboard()
    st.cache_resource.clear()  # shuts the page's Cassandra session down


def _account(settings: DashboardSettings, role: Role) -> tuple[str, str]:
    user = next(u for u in settings.users if u.role is role)
    return user.name, user.password.get_secret_value()


def _login(user: str, password: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    at.text_input(key="login_user").input(user)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _all_protos(at: AppTest) -> str:
    """Every element the page sent to the browser, as text (the main area and the sidebar)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if getattr(node, "proto", None) is not None:
            out.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(out)


def _expected_latest(rows: list[seed.LatestRow]) -> pd.DataFrame:
    frame = pd.DataFrame(seed.as_dicts(rows))
    frame["age"] = frame["age"].astype("Int64")
    frame["ingestion time"] = pd.to_datetime(frame["ingestion time"], utc=True)
    return frame


def test_operator_sees_the_newest_users_in_order_and_the_exact_figures(
    app_env: DashboardSettings, admin: Session
) -> None:
    _now, rows = seed.seed(admin)
    at = _login(*_account(app_env, Role.OPERATOR))

    assert not at.exception
    assert [e.value for e in at.error] == []
    metrics = _metrics(at)
    newest = metrics.pop("Newest row")
    last_batch = metrics.pop("Last serving batch")
    assert metrics == {
        "Total users": str(seed.TOTAL_USERS),
        "Countries": "5",
        "Average age": seed.AVERAGE_AGE,
        "Users in the last minute": "3",
        "Batch": "7",
        "Rows per second": "120.5",
        "Batch duration": "850 ms",
    }
    # Ages depend on when the page ran: seconds after the seeding.
    assert re.fullmatch(r"(\d+m )?\d+s ago", newest) and re.fullmatch(r"(\d+m )?\d+s ago", last_batch), (
        newest,
        last_batch,
    )

    latest, countries = (d.value for d in at.dataframe)
    pd.testing.assert_frame_equal(latest.reset_index(drop=True), _expected_latest(rows[:10]))
    # The operator sees every figure, small ones included, largest country first.
    assert countries.to_dict("records") == [
        {"country": "Norway", "users": "40", "average age": "38.0"},
        {"country": "France", "users": "25", "average age": "45.0"},
        {"country": "Brazil", "users": "12", "average age": "30.0"},
        {"country": "Chile", "users": "4", "average age": "50.0"},
        {"country": "Iceland", "users": "1", "average age": "29.0"},
    ]
    assert len(at.get("vega_lite_chart")) == CHARTS
    assert [s.value for s in at.subheader] == [
        "Latest users",
        "Statistics",
        "Data quality",
        "Pipeline health",
    ]
    assert [c.value for c in at.caption if "quarantined" in c.value] == [
        "Last 3 batches: 2.33 % of 300 rows quarantined."
    ]


def test_latest_users_table_follows_the_number_chosen_in_the_page(
    app_env: DashboardSettings, admin: Session
) -> None:
    _now, rows = seed.seed(admin)
    at = _login(*_account(app_env, Role.OPERATOR))
    at.number_input(key="latest_n").set_value(14).run()

    assert not at.exception
    # 13 rows today (or yesterday), then two found by walking back over empty days.
    pd.testing.assert_frame_equal(at.dataframe[0].value.reset_index(drop=True), _expected_latest(rows[:14]))


def test_viewer_gets_aggregates_only_with_small_counts_hidden(
    app_env: DashboardSettings, admin: Session
) -> None:
    _now, rows = seed.seed(admin)
    at = _login(*_account(app_env, Role.VIEWER))

    assert not at.exception
    assert [e.value for e in at.error] == []
    assert "Latest users" not in [s.value for s in at.subheader]
    assert [n.label for n in at.number_input] == ["Refresh every (s)"]
    (countries,) = (d.value for d in at.dataframe)
    assert countries.to_dict("records") == [
        {"country": "Norway", "users": "40", "average age": "38.0"},
        {"country": "France", "users": "25", "average age": "45.0"},
        {"country": "Brazil", "users": "12", "average age": "30.0"},
        {"country": "Chile", "users": "< 5", "average age": "-"},
        {"country": "Iceland", "users": "< 5", "average age": "-"},
    ]
    assert _metrics(at)["Total users"] == str(seed.TOTAL_USERS)
    assert len(at.get("vega_lite_chart")) == CHARTS
    sent = _all_protos(at)
    for row in rows:
        assert row.full_name not in sent and row.city not in sent


def test_a_wrong_password_shows_nothing_and_is_logged_without_the_password(
    app_env: DashboardSettings, admin: Session, caplog: pytest.LogCaptureFixture
) -> None:
    seed.seed(admin)
    user, password = _account(app_env, Role.OPERATOR)
    wrong = password + "x"
    with caplog.at_level(logging.INFO, logger="dashboard"):
        at = _login(user, wrong)
        stranger = _login("nobody", password)

    for page in (at, stranger):
        assert not page.exception
        assert [e.value for e in page.error] == ["Wrong user name or password."]
        assert page.metric.len == 0 and page.dataframe.len == 0
        assert page.get("vega_lite_chart") == []
        assert [t.label for t in page.text_input] == ["User", "Password"]  # still the login form
    messages = [r.getMessage() for r in caplog.records if r.name == "dashboard.auth"]
    assert messages == [
        f"dashboard login failed: user={user!r} (wrong password)",
        "dashboard login failed: user='nobody' (unknown user)",
    ]
    assert not any(password in r.getMessage() or wrong in r.getMessage() for r in caplog.records)


def test_a_successful_login_is_logged(
    app_env: DashboardSettings, admin: Session, caplog: pytest.LogCaptureFixture
) -> None:
    seed.seed(admin)
    user, password = _account(app_env, Role.VIEWER)
    with caplog.at_level(logging.INFO, logger="dashboard"):
        at = _login(user, password)
    assert not at.exception
    messages = [r.getMessage() for r in caplog.records if r.name == "dashboard.auth"]
    assert messages == [f"dashboard login ok: user={user!r} role=viewer"]
    assert not any(password in r.getMessage() for r in caplog.records)


def _rerun_until(at: AppTest, done: Any, what: str, timeout: float = 60) -> None:
    # The server caches permissions (permissions_validity) and the page its queries (2 s).
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception
        if done(at):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: errors {[e.value for e in at.error]}")
        time.sleep(1)


def test_a_missing_grant_shows_a_banner_and_the_page_recovers(
    app_env: DashboardSettings, admin: Session, dash_cassandra: CassandraSettings
) -> None:
    seed.seed(admin)
    reader = dash_cassandra.reader.user
    at = _login(*_account(app_env, Role.OPERATOR))
    assert _metrics(at)["Total users"] == str(seed.TOTAL_USERS)
    admin.execute(f"REVOKE SELECT ON KEYSPACE {seed.KEYSPACE} FROM {reader}")
    try:
        _rerun_until(at, lambda page: page.error.len > 0, "the missing-grant banner")
        (banner,) = (e.value for e in at.error)
        assert banner.startswith(f"Role {reader} lacks a grant: User {reader} has no SELECT permission on")
        assert at.metric.len == 0 and at.dataframe.len == 0
    finally:
        admin.execute(f"GRANT SELECT ON KEYSPACE {seed.KEYSPACE} TO {reader}")
    _rerun_until(at, lambda page: page.error.len == 0, "recovery after the grant is back")
    assert _metrics(at)["Total users"] == str(seed.TOTAL_USERS)


def test_unreachable_cassandra_shows_a_banner_not_a_traceback(
    app_env: DashboardSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_PORT", "1")  # nothing listens there
    st.cache_resource.clear()
    at = _login(*_account(load_dashboard(), Role.OPERATOR))
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Cassandra is unreachable at 127.0.0.1:1. Retrying at every refresh."
    ]
    assert at.metric.len == 0 and at.dataframe.len == 0


def test_reads_use_the_keys_and_walk_back_over_empty_days(
    dash_cassandra: CassandraSettings, admin: Session
) -> None:
    now, rows = seed.seed(admin)
    cluster, reader = queries.connect(dash_cassandra)
    try:
        latest = queries.latest_users(reader, 50, now)
        assert queries.users_since(reader, now - queries.LAST_MINUTE, now) == 3
        assert queries.newest_ingestion(reader, now) == rows[0].ingestion_time
        bands = queries.age_band_stats(reader)
    finally:
        cluster.shutdown()
    pd.testing.assert_frame_equal(latest, _expected_latest(rows))
    assert bands.to_dict("records") == [
        {"age band": "18-24", "users": 10},
        {"age band": "25-34", "users": 20},
        {"age band": "35-44", "users": 30},
        {"age band": "45-54", "users": 15},
        {"age band": "65+", "users": 7},
    ]


def test_insights_toggle_shows_the_live_analyses_from_cassandra(
    app_env: DashboardSettings, admin: Session
) -> None:
    seed.seed(admin)
    at = _login(*_account(app_env, Role.OPERATOR))
    assert not at.exception
    assert "Insights" not in [h.value for h in at.header]
    at.sidebar.toggle[0].set_value(True).run()
    assert not at.exception
    assert [e.value for e in at.error] == []
    assert "Insights" in [h.value for h in at.header]


def test_active_alerts_of_the_monitor_show_in_the_health_section(
    app_env: DashboardSettings, admin: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed.seed(admin)
    store = AlertStore(tmp_path / "alerts.json")
    store.record(Alert(rule="lag", severity="warning", state="firing", summary="job is 12000 records behind"))
    store.record(Alert(rule="no_batch", severity="critical", state="firing", summary="no batch for 400 s"))
    store.record(Alert(rule="no_batch", severity="critical", state="resolved", summary="batches again"))
    monkeypatch.setenv("ALERT_FILE", str(tmp_path / "alerts.json"))
    at = _login(*_account(app_env, Role.OPERATOR))
    assert not at.exception
    assert [w.value for w in at.warning] == ["Alert warning `lag`: job is 12000 records behind"]
