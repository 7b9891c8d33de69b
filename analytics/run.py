"""Running analyses: each one timed, a failure kept as its one-line error, results as JSON
(the Delta analyses come back from their spark-submit process that way)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from analytics.model import Analysis, Outcome, Result, Sources

log = logging.getLogger(__name__)


def _one_line(exc: BaseException) -> str:
    for line in str(exc).strip().splitlines():
        if line.strip():
            return f"{type(exc).__name__}: {line.strip()[:300]}"
    return type(exc).__name__


def run_analyses(analyses: Iterable[Analysis], src: Sources) -> list[Outcome]:
    """Run each analysis; a failing one is reported with its error, the others still run."""
    outcomes = []
    for analysis in analyses:
        start = time.monotonic()
        try:
            result = analysis.run(src)
            outcomes.append(Outcome(analysis.name, result, seconds=time.monotonic() - start))
            log.info("%s: %d rows", analysis.name, len(result.rows))
        except Exception as exc:
            log.error("%s failed: %s", analysis.name, _one_line(exc))
            outcomes.append(Outcome(analysis.name, None, _one_line(exc), time.monotonic() - start))
    return outcomes


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def outcomes_to_json(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    return [
        {
            "name": o.name,
            "error": o.error,
            "seconds": round(o.seconds, 3),
            "result": None
            if o.result is None
            else {
                "query": o.result.query,
                "columns": list(o.result.columns),
                "rows": [{k: _jsonable(v) for k, v in row.items()} for row in o.result.rows],
                "note": o.result.note,
            },
        }
        for o in outcomes
    ]


def outcomes_from_json(items: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    outcomes = []
    for item in items:
        raw = item.get("result")
        result = (
            None
            if raw is None
            else Result(
                raw["query"], tuple(raw["columns"]), [dict(r) for r in raw["rows"]], raw.get("note", "")
            )
        )
        outcomes.append(Outcome(item["name"], result, item.get("error", ""), float(item.get("seconds", 0.0))))
    return outcomes
