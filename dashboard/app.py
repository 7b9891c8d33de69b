"""The Streamlit page: login, then the live view of the Cassandra projections.

Thin on purpose: reads are in dashboard.queries, charts in dashboard.charts, the login in
dashboard.auth. One Cassandra session per process (st.cache_resource, never cached when
the connection fails, so the page recovers by itself), query results cached for at most
the shortest refresh, and the data part re-run by st.fragment(run_every=...) without
blocking the page.

    streamlit run dashboard/app.py      (scripts/dashboard.sh sets the address and options)
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the project root.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cassandra.cluster import Session  # noqa: E402

from common import envfile  # noqa: E402
from common.settings import SettingsError  # noqa: E402
from dashboard import alerts_view, charts, insights_view, queries  # noqa: E402
from dashboard.auth import Authenticator, Identity, LoginThrottle  # noqa: E402
from dashboard.settings import MAX_REFRESH_SECONDS, MIN_REFRESH_SECONDS, DashboardSettings, Role  # noqa: E402
from dashboard.settings import load as load_settings  # noqa: E402
from ops import alerts, supervise  # noqa: E402

log = logging.getLogger("dashboard.app")


@st.cache_resource(show_spinner=False)
def _settings() -> DashboardSettings:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The driver logs every failed reconnection; the page's banner already says it.
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    return load_settings()


@st.cache_resource(show_spinner="Preparing the login...")
def _authenticator() -> Authenticator:
    return Authenticator(_settings().users)


@st.cache_resource(show_spinner=False)
def _throttle() -> LoginThrottle:
    """One failure record per process, shared by every browser session (dashboard.auth)."""
    return LoginThrottle()


def _client() -> str:
    # The peer address of the browser's connection (None on loopback, so all local users share one).
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "local"


def _close(session: Session) -> None:
    session.cluster.shutdown()


@st.cache_resource(show_spinner=False, on_release=_close)
def _session(key: str) -> Session:
    """One session per process; a failed connect raises, so nothing is cached and the next
    refresh tries again. `key` names the target (a new keyspace gets a new session)."""
    _cluster, session = queries.connect(_settings().cassandra)
    log.info("connected to Cassandra: %s", key)
    return session


# Cached no longer than the shortest refresh a user can pick, so every refresh sees new rows.
@st.cache_data(ttl=MIN_REFRESH_SECONDS, show_spinner=False, max_entries=64)
def _snapshot(key: str, latest_n: int | None) -> queries.Snapshot:
    return queries.snapshot(_session(key), dt.datetime.now(dt.UTC), latest_n)


def _login(auth: Authenticator) -> None:
    st.title("Random User Analytics")
    # Cleared on submit: a typed password never stays in the page's state.
    with st.form("login", clear_on_submit=True):
        user = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        throttle, client = _throttle(), _client()
        wait = throttle.retry_after(user, client)
        if wait > 0:  # no password check at all while locked
            log.warning(
                "dashboard login throttled: user=%r client=%s retry in %.0f s", user[:64], client, wait
            )
            st.error(f"Too many failed logins: try again in {math.ceil(wait)} s.")
            return
        identity = auth.authenticate(user, password)
        if identity is None:
            throttle.failed(user, client)
            st.error("Wrong user name or password.")
        else:
            throttle.succeeded(user)
            st.session_state["identity"] = identity
            st.rerun()


def _sidebar(settings: DashboardSettings, identity: Identity) -> tuple[int, int, int | None]:
    st.sidebar.markdown(f"**{identity.user}** ({identity.role.value})")
    if st.sidebar.button("Log out"):
        log.info("dashboard logout: user=%r", identity.user)
        st.session_state.pop("identity", None)
        st.rerun()
    refresh = st.sidebar.number_input(
        "Refresh every (s)",
        min_value=MIN_REFRESH_SECONDS,
        max_value=MAX_REFRESH_SECONDS,
        value=settings.refresh_seconds,
        key="refresh_seconds",
    )
    top_n = st.sidebar.slider("Countries in the charts", 3, 30, settings.top_countries, key="top_n")
    latest_n: int | None = None
    if identity.role is Role.OPERATOR:
        latest_n = int(
            st.sidebar.number_input("Latest users shown", 1, 500, settings.latest_default, key="latest_n")
        )
    return int(refresh), int(top_n), latest_n


def _figures(snap: queries.Snapshot, now: dt.datetime) -> None:
    figures = queries.key_figures(snap.genders, snap.countries, snap.last_minute, snap.newest)
    cols = st.columns(5)
    cols[0].metric("Total users", f"{figures.total_users:,}")
    cols[1].metric("Countries", figures.countries)
    cols[2].metric("Average age", "-" if figures.average_age is None else f"{figures.average_age:.1f}")
    cols[3].metric("Users in the last minute", figures.last_minute)
    cols[4].metric(
        "Newest row",
        queries.human_age(queries.freshness_seconds(figures.newest, now))
        + (" ago" if figures.newest else ""),
        help="How long ago the newest user was fetched (ingestion time, UTC).",
    )


def _charts(snap: queries.Snapshot, top_n: int, min_count: int | None) -> None:
    st.subheader("Statistics")
    if snap.countries.empty and snap.genders.empty:
        st.info("No aggregates yet: start the producer and the job (`make demo`).")
        return
    left, right = st.columns(2)
    left.altair_chart(charts.country_bars(queries.country_bars(snap.countries, top_n, min_count)))
    right.altair_chart(charts.country_ages(queries.country_ages(snap.countries, top_n, min_count)))
    left, right = st.columns(2)
    left.altair_chart(charts.gender_split(queries.gender_split(snap.genders)))
    right.altair_chart(charts.age_distribution(snap.bands))
    with st.expander("All countries"):
        if min_count is not None:
            st.caption(f"Counts below {min_count} are shown as '< {min_count}' and have no average.")
        st.dataframe(queries.country_table(snap.countries, min_count), hide_index=True)


def _quality(snap: queries.Snapshot) -> None:
    st.subheader("Data quality")
    if snap.quality.empty:
        st.info("No quality metrics in the last days.")
        return
    window = snap.quality
    checked = int(window["valid"].sum() + window["quarantined"].sum())
    share = 100.0 * int(window["quarantined"].sum()) / checked if checked else 0.0
    st.caption(f"Last {len(window)} batches: {share:.2f} % of {checked:,} rows quarantined.")
    left, right = st.columns(2)
    left.altair_chart(charts.quarantine_share(window))
    reasons = queries.reason_totals(window)
    if reasons.empty:
        right.success("No row quarantined in these batches.")
    else:
        right.altair_chart(charts.top_reasons(reasons))


def _active_alerts() -> dict[str, dict[str, object]]:
    """The alerts firing now, as the monitor and the supervisors recorded them (ops/alerts.py)."""
    env = envfile.load()  # ALERT_FILE may change while the page runs; the alert model reads it
    return alerts.AlertStore(alerts.alert_file(env, _settings().stack_dir)).active()


def _down_processes() -> list[tuple[str, str]]:
    """(name, one-line reason) of each supervised process that is down now (make demo)."""
    stack_dir = _settings().stack_dir
    down = []
    for state in supervise.states(stack_dir / "supervise"):
        check = supervise.status_check(state)
        if check.state == "down":
            down.append((check.name, check.detail))
    return down


def _health(snap: queries.Snapshot, now: dt.datetime, operator: bool) -> None:
    st.subheader("Pipeline health")
    # An alert's text is whatever a process printed: one escaped line for everyone, the whole
    # text as plain code for operators only (dashboard/alerts_view.py).
    for rule, alert in sorted(_active_alerts().items()):
        st.warning(alerts_view.banner(rule, alert), icon="🔔")
        if operator:
            with st.expander("Details of " + alerts_view.escape_markdown(alerts_view.one_line(rule, 80))):
                st.code(alerts_view.details(rule, alert), language=None)
    # A supervised process that is down (crashed, waiting for its restart): said at once, the
    # data below stays what the stores hold.
    for name, detail in _down_processes():
        st.error(f"{alerts_view.escape_markdown(name)} is down: " + alerts_view.escape_markdown(detail[:200]))
    if snap.pipeline.empty:
        st.info("No pipeline metrics in the last days: is the job running?")
        return
    # One row per query of the job: serving (users to the dashboard) and lake (statistics).
    for query in sorted(snap.pipeline["query"].unique(), key=lambda q: (q != "serving", q)):
        last = snap.pipeline[snap.pipeline["query"] == query].iloc[0]
        last_time = last["batch time"].to_pydatetime()
        cols = st.columns(4)
        cols[0].metric(
            f"Last {query} batch",
            queries.human_age(queries.freshness_seconds(last_time, now)) + " ago",
            help=f"Last batch of the {query} query at {last_time:%Y-%m-%d %H:%M:%S} UTC.",
        )
        cols[1].metric("Batch", int(last["batch id"]))
        cols[2].metric("Rows per second", f"{last['processed rows/s']:.1f}")
        duration = last["duration ms"]
        cols[3].metric("Batch duration", "-" if pd.isna(duration) else f"{int(duration):,} ms")
    st.altair_chart(charts.throughput(snap.pipeline))


def _latest(snap: queries.Snapshot) -> None:
    st.subheader("Latest users")
    if snap.latest is None or snap.latest.empty:
        st.info("No users yet.")
        return
    st.dataframe(
        snap.latest,
        hide_index=True,
        column_config={"ingestion time": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss z")},
    )


def _body(settings: DashboardSettings, identity: Identity, top_n: int, latest_n: int | None) -> None:
    c = settings.cassandra
    key = f"{c.reader.user}@{','.join(c.hosts)}:{c.port}/{c.keyspace}"
    try:
        snap = _snapshot(key, latest_n if identity.role is Role.OPERATOR else None)
    except Exception as exc:  # any failure becomes a banner; the next refresh retries
        log.warning("dashboard read failed: %s: %s", type(exc).__name__, exc)
        st.error(queries.explain(exc, c), icon="🚫")
        return
    now = dt.datetime.now(dt.UTC)
    min_count = None if identity.role is Role.OPERATOR else settings.min_count
    st.caption(f"Updated {now:%Y-%m-%d %H:%M:%S} UTC")
    _figures(snap, now)
    if identity.role is Role.OPERATOR:
        _latest(snap)
    _charts(snap, top_n, min_count)
    _quality(snap)
    _health(snap, now, identity.role is Role.OPERATOR)


def main() -> None:
    st.set_page_config(page_title="Random User Analytics", page_icon="📊", layout="wide")
    try:
        settings = _settings()
    except SettingsError as exc:
        st.error(f"Configuration error: {exc}")
        st.stop()
    auth = _authenticator()
    identity: Identity | None = st.session_state.get("identity")
    if identity is None:
        _login(auth)
        return
    refresh, top_n, latest_n = _sidebar(settings, identity)
    st.title("Random User Analytics")
    live = st.fragment(run_every=dt.timedelta(seconds=refresh))(_body)
    live(settings, identity, top_n, latest_n)
    # The few analyses worth watching live (docs/INSIGHTS.md); on demand, outside the refresh.
    if st.sidebar.toggle("Show insights", value=False):
        c = settings.cassandra
        try:
            insights_view.render(_session(f"{c.reader.user}@{','.join(c.hosts)}:{c.port}/{c.keyspace}"))
        except Exception as exc:
            st.error(queries.explain(exc, c), icon="🚫")


main()
