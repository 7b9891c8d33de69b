"""What an analysis is, what it runs against and what it returns (no store, no Spark)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Store = Literal["cassandra", "delta"]
STORES: tuple[Store, ...] = ("cassandra", "delta")
Row = dict[str, Any]
UNKNOWN = "unknown"
LAKE_TABLES = ("bronze", "quarantine", "silver_users", "gold_stats")


@dataclass(frozen=True)
class Result:
    """What an analysis returns: the query it ran (verbatim), the columns and the rows."""

    query: str
    columns: tuple[str, ...]
    rows: list[Row]
    note: str = ""


@dataclass
class Sources:
    """Connections and parameters the analyses run against (only the needed ones are set).

    `cassandra` is a driver Session, `spark` a SparkSession with Delta; `tables` maps a
    lake table name (LAKE_TABLES) to its path. Tests and the benchmark pass their own
    keyspace and paths to stay isolated.
    """

    cassandra: Any = None
    keyspace: str = ""
    spark: Any = None
    tables: Mapping[str, str] = field(default_factory=dict)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    days: int = 2
    top: int = 5
    min_users: int = 20
    versions_ago: int = 5
    as_of_hours: float = 24.0

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(dt.UTC).date()

    def utc_days(self) -> list[dt.date]:
        """The UTC days read (Cassandra day partitions, the bronze window), today first."""
        return [self.today - dt.timedelta(days=i) for i in range(self.days)]


@dataclass(frozen=True)
class Analysis:
    name: str
    title: str
    question: str
    why: str
    store: Store
    run: Callable[[Sources], Result]
    # How Python finishes what the server returned ("" when the query's rows are shown as is).
    finish: str = ""
    # (label column, value column) of the bar chart in the HTML report.
    chart: tuple[str, str] | None = None


@dataclass(frozen=True)
class Outcome:
    """One analysis's run: its result, or the one-line error that stopped it."""

    name: str
    result: Result | None
    error: str = ""
    seconds: float = 0.0


def lake_tables(lake_dir: Path) -> dict[str, str]:
    return {name: str(lake_dir / name) for name in LAKE_TABLES}


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def pct(part: float, whole: float) -> float | None:
    return None if not whole else round(100.0 * part / whole, 2)


def hour_label(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:00")
