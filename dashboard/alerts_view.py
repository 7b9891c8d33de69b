"""What the health panel shows of an alert: a one-line, escaped summary; details for operators.

An alert's text comes from the monitor and the supervisors and may hold anything a process
printed (a Spark stack trace: `$anonfun$...$` would render as LaTeX, `*`, `_`, `[..](..)`, `:red[..]`
as Markdown). Streamlit renders the body of `st.warning` as Markdown, so the banner keeps the
first line only, shortened, with every ASCII punctuation character backslash-escaped (CommonMark
allows it for all of them); the full text is shown to operators as plain code, never as Markdown.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

SUMMARY_CHARS = 160
RULE_CHARS = 80
_ESCAPE = {ord(c): "\\" + c for c in string.punctuation}
_SPACE = re.compile(r"\s+")


def escape_markdown(text: str) -> str:
    """Literal text for a Markdown body: every ASCII punctuation character escaped."""
    return text.translate(_ESCAPE)


def one_line(text: str, limit: int) -> str:
    """The first non-empty line, inner whitespace collapsed, at most `limit` characters."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    line = _SPACE.sub(" ", first).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def banner(rule: str, alert: Mapping[str, Any]) -> str:
    """`Alert <severity> `<rule>`: <summary>` as safe Markdown: one line, nothing interpreted."""
    # Inside a code span nothing is interpreted (and a backslash would show): drop backticks only.
    code = one_line(rule, RULE_CHARS).replace("`", "'") or "?"
    severity = escape_markdown(one_line(str(alert.get("severity", "")), 20))
    summary = escape_markdown(one_line(str(alert.get("summary", "")), SUMMARY_CHARS))
    return f"Alert {severity} `{code}`: {summary}"


def details(rule: str, alert: Mapping[str, Any]) -> str:
    """The whole alert as plain text (for st.code): rule, state, time, full summary, details."""
    lines = [
        f"rule: {rule}",
        f"severity: {alert.get('severity', '')}",
        f"state: {alert.get('state', '')}",
        f"at: {alert.get('at', '')}",
        "summary:",
        str(alert.get("summary", "")),
    ]
    extra = alert.get("details")
    if extra:
        lines += ["details:", json.dumps(extra, indent=2, sort_keys=True, default=str)]
    return "\n".join(lines)
