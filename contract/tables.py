"""The Cassandra tables, declared once: columns and CQL types, each column's class (docs/GOVERNANCE.md
section 1), the key, what writes the table, whether it holds personal data, and its erasure and
export rules.

Read by jobs/core/projections.py (the rows written), jobs/preflight.py (the tables the job needs),
ops/cassandra_setup.py (the eraser's grants), ops/access_matrix.py (the matrix and its document)
and jobs/export.py (what may be exported, what is withheld under k). ddl/cassandra/002_tables.cql
creates them; tests/unit/test_contract.py checks it column for column against this file.

To add a table: declare it here and create it in ddl/cassandra/002_tables.cql (the test fails
until both agree); its readers above pick it up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Classification = Literal["public", "internal", "confidential", "restricted"]


@dataclass(frozen=True)
class Column:
    name: str
    cql: str  # the CQL type, as the DDL writes it
    classification: Classification


@dataclass(frozen=True)
class Aggregate:
    """Export rule of a statistics table: one row per group, the count, and the columns withheld
    (with the group's count) when it is below k (DASHBOARD_MIN_COUNT)."""

    key: str
    count: str
    withheld: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    partition_key: tuple[str, ...]
    clustering: tuple[tuple[str, str], ...]  # (column, ASC|DESC), in order
    written_by: str  # the code that produces its rows
    personal: bool  # holds data about one person
    # Erasure: the eraser role's permissions on this table and why (empty: nothing to erase).
    eraser: tuple[tuple[str, str], ...] = ()
    # Export (python -m jobs.export): an Aggregate, or the reason the table is refused.
    export: Aggregate | str = field(default="not exported")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _cols(*spec: tuple[str, str, Classification]) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in spec)


_PER_PERSON = "per-person table: use users_pseudonymised"
_ERASE = "erasure: delete a person's rows"

TABLES: tuple[Table, ...] = (
    Table(
        "random_user_table",
        _cols(
            ("user_id", "text", "confidential"),
            ("ingestion_time", "timestamp", "internal"),
            ("batch_id", "text", "internal"),
            ("title", "text", "confidential"),
            ("first_name", "text", "confidential"),
            ("last_name", "text", "confidential"),
            ("full_name", "text", "confidential"),
            ("gender", "text", "internal"),
            ("age", "int", "internal"),
            ("birth_year", "int", "confidential"),
            ("country", "text", "internal"),
            ("nat", "text", "internal"),
            ("city", "text", "internal"),
            ("state", "text", "internal"),
            ("registered_date", "date", "internal"),
            ("email_domain", "text", "internal"),
            ("email_pseudo", "text", "confidential"),
            ("phone_pseudo", "text", "confidential"),
            ("cell_pseudo", "text", "confidential"),
            ("processed_time", "timestamp", "internal"),
        ),
        partition_key=("user_id",),
        clustering=(("ingestion_time", "DESC"),),
        written_by="jobs.core.projections.to_random_user_rows (serving query)",
        personal=True,
        eraser=(("MODIFY", _ERASE), ("SELECT", "erasure: find the person's fetch times")),
        export=_PER_PERSON,
    ),
    Table(
        "latest_users",
        _cols(
            ("day", "date", "internal"),
            ("ingestion_time", "timestamp", "internal"),
            ("user_id", "text", "confidential"),
            ("full_name", "text", "confidential"),
            ("gender", "text", "internal"),
            ("age", "int", "internal"),
            ("country", "text", "internal"),
            ("city", "text", "internal"),
            ("nat", "text", "internal"),
        ),
        partition_key=("day",),
        clustering=(("ingestion_time", "DESC"), ("user_id", "ASC")),
        written_by="jobs.core.projections.to_latest_users_rows (serving query)",
        personal=True,
        eraser=(("MODIFY", _ERASE),),
        export=_PER_PERSON,
    ),
    Table(
        "country_stats",
        _cols(
            ("country", "text", "public"),
            ("count_users", "bigint", "public"),
            ("sum_age", "bigint", "public"),
            ("avg_age", "double", "public"),
            ("male_count", "bigint", "public"),
            ("female_count", "bigint", "public"),
            ("last_update", "timestamp", "internal"),
        ),
        partition_key=("country",),
        clustering=(),
        written_by="jobs.core.aggregates (gold_stats, dimension country, lake query)",
        personal=False,
        export=Aggregate("country", "count_users", ("sum_age", "avg_age", "male_count", "female_count")),
    ),
    Table(
        "gender_stats",
        _cols(
            ("gender", "text", "public"),
            ("count_users", "bigint", "public"),
            ("sum_age", "bigint", "public"),
            ("avg_age", "double", "public"),
            ("last_update", "timestamp", "internal"),
        ),
        partition_key=("gender",),
        clustering=(),
        written_by="jobs.core.aggregates (gold_stats, dimension gender, lake query)",
        personal=False,
        export=Aggregate("gender", "count_users", ("sum_age", "avg_age")),
    ),
    Table(
        "age_band_stats",
        _cols(
            ("age_band", "text", "public"),
            ("count_users", "bigint", "public"),
            ("last_update", "timestamp", "internal"),
        ),
        partition_key=("age_band",),
        clustering=(),
        written_by="jobs.core.aggregates (gold_stats, dimension age_band, lake query)",
        personal=False,
        export=Aggregate("age_band", "count_users", ()),
    ),
    Table(
        "quality_metrics",
        _cols(
            ("day", "date", "internal"),
            ("batch_time", "timestamp", "internal"),
            ("batch_id", "bigint", "internal"),
            ("records_in", "bigint", "internal"),
            ("users_in", "bigint", "internal"),
            ("valid", "bigint", "internal"),
            ("quarantined", "bigint", "internal"),
            ("reasons", "map<text, bigint>", "internal"),
            ("completeness", "map<text, double>", "internal"),
            ("duplicates_in_batch", "bigint", "internal"),
            ("duplicates_across", "bigint", "internal"),
        ),
        partition_key=("day",),
        clustering=(("batch_time", "DESC"), ("batch_id", "DESC")),
        written_by="jobs.core.quality.batch_metrics, jobs.pipeline.LakeProcessor.quality_row (lake query)",
        personal=False,
    ),
    Table(
        "pipeline_metrics",
        _cols(
            ("day", "date", "internal"),
            ("batch_time", "timestamp", "internal"),
            ("query_name", "text", "internal"),
            ("batch_id", "bigint", "internal"),
            ("input_rows", "bigint", "internal"),
            ("input_rows_per_second", "double", "internal"),
            ("processed_rows_per_second", "double", "internal"),
            ("trigger_ms", "bigint", "internal"),
            ("durations_ms", "map<text, bigint>", "internal"),
            ("quarantined", "bigint", "internal"),
            ("end_offsets", "text", "internal"),
        ),
        partition_key=("day",),
        clustering=(("batch_time", "DESC"), ("query_name", "ASC"), ("batch_id", "DESC")),
        written_by="jobs.listener.MetricsListener (every streaming progress event)",
        personal=False,
    ),
)

BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def columns(table: str) -> tuple[str, ...]:
    """A table's column names, in the DDL's order."""
    return BY_NAME[table].column_names
