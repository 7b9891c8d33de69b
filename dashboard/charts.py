"""Altair charts of the dashboard: readable axis titles, sorted bars, tooltips on every mark."""

from __future__ import annotations

import altair as alt
import pandas as pd

HEIGHT = 300
BAR_PX = 26  # one readable label per bar: the chart grows with the number of bars


def _bars_height(frame: pd.DataFrame) -> int:
    return max(HEIGHT, BAR_PX * len(frame))


def _category_axis() -> alt.Axis:
    return alt.Axis(labelOverlap=False, labelLimit=260)


def country_bars(bars: pd.DataFrame) -> alt.Chart:
    """Horizontal bars, largest first, 'Other' last (the order of queries.country_bars)."""
    return (
        alt.Chart(bars, title="Users per country")
        .mark_bar()
        .encode(
            x=alt.X("users:Q", title="Users"),
            y=alt.Y("country:N", sort=bars["country"].tolist(), title=None, axis=_category_axis()),
            tooltip=[alt.Tooltip("country:N", title="Country"), alt.Tooltip("label:N", title="Users")],
        )
        .properties(height=_bars_height(bars))
    )


def country_ages(ages: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(ages, title="Average age per country (largest countries)")
        .mark_bar(color="#59a14f")
        .encode(
            x=alt.X("average age:Q", title="Average age (years)"),
            y=alt.Y("country:N", sort=ages["country"].tolist(), title=None, axis=_category_axis()),
            tooltip=[
                alt.Tooltip("country:N", title="Country"),
                alt.Tooltip("average age:Q", title="Average age", format=".1f"),
                alt.Tooltip("users:Q", title="Users"),
            ],
        )
        .properties(height=_bars_height(ages))
    )


def gender_split(split: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(split, title="Gender split")
        .mark_arc(innerRadius=60)
        .encode(
            theta=alt.Theta("users:Q"),
            color=alt.Color("gender:N", title="Gender"),
            tooltip=[
                alt.Tooltip("gender:N", title="Gender"),
                alt.Tooltip("users:Q", title="Users"),
                alt.Tooltip("share %:Q", title="Share (%)", format=".1f"),
            ],
        )
        .properties(height=HEIGHT)
    )


def age_distribution(bands: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(bands, title="Age distribution")
        .mark_bar(color="#f28e2b")
        .encode(
            x=alt.X(
                "age band:N", sort=bands["age band"].tolist(), title="Age band", axis=alt.Axis(labelAngle=0)
            ),
            y=alt.Y("users:Q", title="Users"),
            tooltip=[alt.Tooltip("age band:N", title="Age band"), alt.Tooltip("users:Q", title="Users")],
        )
        .properties(height=HEIGHT)
    )


def quarantine_share(quality: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(quality, title="Quarantined share per batch")
        .mark_line(point=True, color="#e15759")
        .encode(
            x=alt.X("batch time:T", title="Batch time (UTC)", axis=alt.Axis(format="%H:%M:%S")),
            y=alt.Y("quarantined %:Q", title="Quarantined (%)"),
            tooltip=[
                alt.Tooltip("batch time:T", title="Batch time", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("batch id:Q", title="Batch"),
                alt.Tooltip("valid:Q", title="Valid rows"),
                alt.Tooltip("quarantined:Q", title="Quarantined rows"),
                alt.Tooltip("quarantined %:Q", title="Quarantined (%)", format=".1f"),
            ],
        )
        .properties(height=HEIGHT)
    )


def top_reasons(reasons: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(reasons, title="Top quarantine reasons")
        .mark_bar(color="#e15759")
        .encode(
            x=alt.X("rows:Q", title="Rows"),
            y=alt.Y("reason:N", sort=reasons["reason"].tolist(), title=None, axis=_category_axis()),
            tooltip=[alt.Tooltip("reason:N", title="Reason"), alt.Tooltip("rows:Q", title="Rows")],
        )
        .properties(height=_bars_height(reasons))
    )


def throughput(pipeline: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(pipeline, title="Processed rows per second")
        .mark_line(point=True)
        .encode(
            x=alt.X("batch time:T", title="Batch time (UTC)", axis=alt.Axis(format="%H:%M:%S")),
            y=alt.Y("processed rows/s:Q", title="Rows/s"),
            color=alt.Color("query:N", title="Query"),
            tooltip=[
                alt.Tooltip("batch time:T", title="Batch time", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("batch id:Q", title="Batch"),
                alt.Tooltip("input rows:Q", title="Input rows"),
                alt.Tooltip("processed rows/s:Q", title="Rows/s", format=".1f"),
                alt.Tooltip("duration ms:Q", title="Duration (ms)"),
            ],
        )
        .properties(height=HEIGHT)
    )
