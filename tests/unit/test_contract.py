"""ddl/cassandra/ creates exactly the tables contract/tables.py declares: columns, types, keys."""

from __future__ import annotations

import re

from contract import tables
from tests.conftest import ROOT

DDL = ROOT / "ddl" / "cassandra" / "002_tables.cql"
CREATE = re.compile(
    r"CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+) \((.*?)\n\)(.*?);", re.DOTALL | re.IGNORECASE
)


def _ddl_tables() -> dict[str, tuple[list[tuple[str, str]], tuple[str, ...], tuple[tuple[str, str], ...]]]:
    """name -> ([(column, type)], partition key, [(clustering column, order)]) as the DDL says."""
    text = "\n".join(line.split("--", 1)[0] for line in DDL.read_text(encoding="utf-8").splitlines())
    found = {}
    for name, body, options in CREATE.findall(text):
        columns: list[tuple[str, str]] = []
        partition: tuple[str, ...] = ()
        clustering_columns: tuple[str, ...] = ()
        for raw in re.split(r",\s*\n", body.strip()):
            line = " ".join(raw.split())
            key = re.fullmatch(r"PRIMARY KEY \(\((.*?)\)(?:, (.*))?\)", line)
            if key:
                partition = tuple(c.strip() for c in key.group(1).split(","))
                clustering_columns = tuple(c.strip() for c in (key.group(2) or "").split(",") if c.strip())
                continue
            column, cql = line.split(" ", 1)
            if cql.endswith(" PRIMARY KEY"):
                cql = cql.removesuffix(" PRIMARY KEY")
                partition = (column,)
            columns.append((column, cql))
        order = dict(re.findall(r"(\w+) (ASC|DESC)", options))
        found[name] = (columns, partition, tuple((c, order.get(c, "ASC")) for c in clustering_columns))
    return found


def test_the_ddl_creates_the_declared_tables_column_for_column() -> None:
    declared = {
        t.name: ([(c.name, c.cql) for c in t.columns], t.partition_key, t.clustering) for t in tables.TABLES
    }
    assert _ddl_tables() == declared


def test_every_column_is_classified_and_erasure_covers_every_personal_table() -> None:
    for t in tables.TABLES:
        assert len(set(t.column_names)) == len(t.columns), t.name
        assert {c.classification for c in t.columns} <= {"public", "internal", "confidential", "restricted"}
        # A table about people is erased and never exported as such; the others hold nothing to erase.
        assert bool(t.eraser) == t.personal, t.name
        assert not t.personal or isinstance(t.export, str), t.name
