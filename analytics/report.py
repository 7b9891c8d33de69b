"""The insights report: Markdown (for reading and diffing), HTML with inline SVG bar charts, JSON.

No plotting library: a bar chart is a few SVG rectangles, which keeps the report one
self-contained file that opens anywhere (and keeps matplotlib out of the dependencies).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analytics.model import Analysis, Outcome, Result

LANGUAGE = {"cassandra": "sql", "delta": "sql"}
STORE_NAME = {"cassandra": "Cassandra", "delta": "Delta (Spark SQL)"}
MAX_ROWS = 40
CHART_BARS = 25


def cell(value: Any) -> str:
    """One value as the report shows it: floats with 2 decimals at most, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(result: Result, max_rows: int = MAX_ROWS) -> str:
    if not result.rows:
        return "_no rows_"
    lines = [
        "| " + " | ".join(result.columns) + " |",
        "|" + "|".join("---" for _ in result.columns) + "|",
    ]
    lines += [
        "| " + " | ".join(_md_escape(cell(row.get(c))) for c in result.columns) + " |"
        for row in result.rows[:max_rows]
    ]
    if len(result.rows) > max_rows:
        lines.append(f"\n_{len(result.rows) - max_rows} more rows in insights.json_")
    return "\n".join(lines)


def markdown(
    analyses: Mapping[str, Analysis],
    outcomes: Sequence[Outcome],
    generated: dt.datetime,
    sources: Mapping[str, str],
) -> str:
    parts = [
        "# Insights report",
        "",
        f"Generated {generated.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC by `python -m analytics`. "
        "Sources: " + ", ".join(f"{STORE_NAME[k]} `{v}`" for k, v in sources.items()) + ".",
        "",
    ]
    for o in outcomes:
        a = analyses[o.name]
        parts += [f"## {a.title}", "", f"**Question.** {a.question}", "", f"**Why it matters.** {a.why}", ""]
        parts += [f"**Store:** {STORE_NAME[a.store]} · `{a.name}` · {o.seconds:.2f} s", ""]
        if o.result is None:
            parts += [f"**Failed:** `{o.error}`", ""]
            continue
        parts += [f"```{LANGUAGE[a.store]}", o.result.query, "```", ""]
        if a.finish:
            parts += [f"Finished in Python: {a.finish}.", ""]
        if o.result.note:
            parts += [f"_Note: {o.result.note}_", ""]
        parts += [markdown_table(o.result), ""]
    return "\n".join(parts)


def svg_bars(result: Result, label: str, value: str, max_bars: int = CHART_BARS) -> str:
    """A horizontal bar chart of one numeric column; empty when there is nothing to draw."""
    points = [
        (cell(r.get(label)), float(r[value])) for r in result.rows if isinstance(r.get(value), (int, float))
    ][:max_bars]
    if not points:
        return ""
    top = max(abs(v) for _, v in points) or 1.0
    bar_h, label_w, width = 18, 170, 420
    zero = label_w + (width / 2 if any(v < 0 for _, v in points) else 0)
    scale = (width - (zero - label_w)) / top
    rows = []
    for i, (name, v) in enumerate(points):
        y = i * (bar_h + 4)
        x = zero if v >= 0 else zero + v * scale
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(name[:26])}</text>'
            f'<rect x="{x:.1f}" y="{y}" width="{abs(v) * scale:.1f}" height="{bar_h}" fill="#4c78a8"/>'
            f'<text x="{label_w + width + 6}" y="{y + 13}">{html.escape(cell(v))}</text>'
        )
    height = len(points) * (bar_h + 4)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 80}" height="{height}" '
        f'font-family="sans-serif" font-size="12" role="img" aria-label="{html.escape(value)} by '
        f'{html.escape(label)}">{"".join(rows)}</svg>'
    )


def _html_table(result: Result, max_rows: int = MAX_ROWS) -> str:
    if not result.rows:
        return "<p><em>no rows</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in result.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(r.get(c)))}</td>" for c in result.columns) + "</tr>"
        for r in result.rows[:max_rows]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "pre{background:#f5f5f5;padding:.8em;overflow-x:auto;font-size:12px}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 8px}"
    "th{background:#eee}section{margin-bottom:2.5em}.err{color:#b00}"
)


def render_html(
    analyses: Mapping[str, Analysis],
    outcomes: Sequence[Outcome],
    generated: dt.datetime,
    sources: Mapping[str, str],
) -> str:
    sections = []
    for o in outcomes:
        a = analyses[o.name]
        parts = [
            f"<h2>{html.escape(a.title)}</h2>",
            f"<p><b>Question.</b> {html.escape(a.question)}<br>"
            f"<b>Why it matters.</b> {html.escape(a.why)}</p>",
            f"<p><b>Store:</b> {STORE_NAME[a.store]} · <code>{a.name}</code> · {o.seconds:.2f} s</p>",
        ]
        if o.result is None:
            parts.append(f'<p class="err">Failed: {html.escape(o.error)}</p>')
        else:
            parts.append(f"<pre>{html.escape(o.result.query)}</pre>")
            if a.finish:
                parts.append(f"<p>Finished in Python: {html.escape(a.finish)}.</p>")
            if o.result.note:
                parts.append(f"<p><em>Note: {html.escape(o.result.note)}</em></p>")
            if a.chart:
                parts.append(svg_bars(o.result, *a.chart))
            parts.append(_html_table(o.result))
        sections.append("<section>" + "".join(parts) + "</section>")
    src = ", ".join(f"{STORE_NAME[k]} <code>{html.escape(v)}</code>" for k, v in sources.items())
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Insights</title><style>{STYLE}</style>'
        f"</head><body><h1>Insights report</h1><p>Generated {generated.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"
        f" UTC by <code>python -m analytics</code>. Sources: {src}.</p>{''.join(sections)}</body></html>"
    )


def write(
    out_dir: Path,
    analyses: Mapping[str, Analysis],
    outcomes: Sequence[Outcome],
    generated: dt.datetime,
    sources: Mapping[str, str],
    raw: Any,
) -> list[Path]:
    """Write insights.md, insights.html and insights.json (raw: JSON-ready results) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "insights.md", out_dir / "insights.html", out_dir / "insights.json"]
    paths[0].write_text(markdown(analyses, outcomes, generated, sources), encoding="utf-8")
    paths[1].write_text(render_html(analyses, outcomes, generated, sources), encoding="utf-8")
    paths[2].write_text(json.dumps(raw, indent=1), encoding="utf-8")
    return paths
