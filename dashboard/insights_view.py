"""The dashboard's "Insights" view: the Cassandra-backed analyses of analytics/, live.

Only the Cassandra analyses: the dashboard reads Cassandra as its read-only account and
must not start Spark or reach into MongoDB. The queries are the very ones the report
shows (analytics.catalogue), so the view and `make insights` cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from analytics.catalogue import BY_NAME
from analytics.model import Analysis, Result, Sources

log = logging.getLogger(__name__)

# The few worth watching live, in the order they are shown.
LIVE: tuple[str, ...] = ("country_age_deviation", "quality_by_hour", "new_users_by_hour", "age_bands")


def live_analyses() -> list[Analysis]:
    return [BY_NAME[name] for name in LIVE]


def run_one(session: Any, analysis: Analysis, keyspace: str | None = None, days: int = 2) -> Result:
    """Run one analysis on a Cassandra session (keyspace: the session's own by default)."""
    ks = keyspace or session.keyspace
    if not ks:
        raise ValueError("the Cassandra session has no keyspace: pass keyspace=")
    return analysis.run(Sources(cassandra=session, keyspace=ks, now=dt.datetime.now(dt.UTC), days=days))


def chart(analysis: Analysis, result: Result) -> alt.Chart | None:
    """Horizontal bars of the analysis's chart column, in the result's order."""
    if not analysis.chart or not result.rows:
        return None
    label, value = analysis.chart
    frame = pd.DataFrame(
        [{label: str(r[label]), value: r[value]} for r in result.rows if r.get(value) is not None]
    )
    if frame.empty:
        return None
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=value.replace("_", " ")),
            y=alt.Y(f"{label}:N", sort=frame[label].tolist(), title=None),
            tooltip=[alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{value}:Q")],
        )
        .properties(height=min(600, 22 * len(frame) + 40))
    )


def _show(analysis: Analysis, result: Result) -> None:
    st.subheader(analysis.title)
    st.caption(f"{analysis.question} {analysis.why}")
    bars = chart(analysis, result)
    if bars is not None:
        st.altair_chart(bars, width="stretch")
    if result.rows:
        st.dataframe(pd.DataFrame(result.rows, columns=list(result.columns)), hide_index=True)
    else:
        st.info("No data yet.")
    with st.expander("Query (CQL)"):
        st.code(result.query, language="sql")
        if analysis.finish:
            st.caption(f"Finished in Python: {analysis.finish}.")


def render(session: Any, keyspace: str | None = None) -> None:
    """Draw the Insights view; a failing analysis shows its error and the others still render."""
    st.header("Insights")
    st.caption("From Cassandra, by key and day partition. `make insights` writes the full report.")
    for analysis in live_analyses():
        try:
            result = run_one(session, analysis, keyspace)
        except Exception as exc:
            log.warning("insight %s failed: %s", analysis.name, exc)
            st.error(f"{analysis.title}: {type(exc).__name__}: {exc}")
            continue
        _show(analysis, result)
