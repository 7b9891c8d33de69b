"""The local Cassandra, for real: each role can do exactly what its grants say, no more;
bad and default credentials are refused; written data survives a restart of the node.

Rows are written under keys of their own (`zz-test-<uuid>`) and deleted afterwards.
The restart test is last in the file: it stops and starts the node through scripts/stack.sh.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from cassandra import Unauthorized
from cassandra.cluster import NoHostAvailable
from pydantic import SecretStr

from common.settings import Account, Settings
from ops.cassandra_setup import DEFAULT_ROLE, auth_failed, desired_grants, grants, in_scope, session
from tests.conftest import run_stack

TABLE = "country_stats"


def _row(country: str) -> dict[str, Any]:
    return {
        "country": country,
        "count_users": 3,
        "sum_age": 120,
        "avg_age": 40.0,
        "male_count": 1,
        "female_count": 2,
        "last_update": datetime(2026, 1, 2, 3, 4, 5, 678000),
    }


def _insert(settings: Settings, account: Account, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    markers = ", ".join(["%s"] * len(row))
    with session(settings.cassandra, account, settings.cassandra.keyspace) as sess:
        sess.execute(f"INSERT INTO {TABLE} ({columns}) VALUES ({markers})", tuple(row.values()))


def _select(settings: Settings, account: Account, country: str) -> list[dict[str, Any]]:
    with session(settings.cassandra, account, settings.cassandra.keyspace) as sess:
        rows = sess.execute(f"SELECT * FROM {TABLE} WHERE country = %s", (country,))
        return [row._asdict() for row in rows]


@pytest.fixture
def test_key(stack: Settings) -> Iterator[str]:
    """A key no real data uses; its row is deleted after the test, whatever happened."""
    key = f"zz-test-{uuid.uuid4()}"
    yield key
    with session(stack.cassandra, stack.cassandra.writer, stack.cassandra.keyspace) as sess:
        sess.execute(f"DELETE FROM {TABLE} WHERE country = %s", (key,))


def test_writer_writes_and_reads_back_the_whole_row(stack: Settings, test_key: str) -> None:
    _insert(stack, stack.cassandra.writer, _row(test_key))

    assert _select(stack, stack.cassandra.writer, test_key) == [_row(test_key)]


def test_reader_can_select_but_not_insert(stack: Settings, test_key: str) -> None:
    _insert(stack, stack.cassandra.writer, _row(test_key))

    assert _select(stack, stack.cassandra.reader, test_key) == [_row(test_key)]
    with pytest.raises(Unauthorized):
        _insert(stack, stack.cassandra.reader, {**_row(test_key), "count_users": 99})
    assert _select(stack, stack.cassandra.writer, test_key) == [_row(test_key)]


def test_app_roles_hold_exactly_their_grants(stack: Settings) -> None:
    # In scope: this keyspace, the system keyspaces and every cluster-wide resource (grants on
    # another application keyspace of the same node, e.g. a test keyspace, belong to its setup).
    keyspace = stack.cassandra.keyspace
    wanted = desired_grants(stack.cassandra)
    actual = {
        role: {g for g in grants(stack.cassandra) if g.role == role and in_scope(g.resource, keyspace)}
        for role in wanted
    }

    assert actual == wanted


def test_wrong_password_is_refused(stack: Settings) -> None:
    wrong = Account(
        stack.cassandra.writer.user, SecretStr(stack.cassandra.writer.password.get_secret_value() + "-wrong")
    )

    with pytest.raises(NoHostAvailable) as refused:
        _select(stack, wrong, "any")
    assert auth_failed(refused.value), refused.value


def test_default_superuser_login_is_refused(stack: Settings) -> None:
    with pytest.raises(NoHostAvailable) as refused:
        _select(stack, DEFAULT_ROLE, "any")
    assert auth_failed(refused.value), refused.value


def test_data_survives_a_restart(stack: Settings, test_key: str) -> None:
    _insert(stack, stack.cassandra.writer, _row(test_key))

    run_stack("down", "cassandra")
    run_stack("up", "cassandra")

    assert _select(stack, stack.cassandra.reader, test_key) == [_row(test_key)]


def test_truncate_and_drop_leave_no_snapshot_holding_the_rows(stack: Settings) -> None:
    """auto_snapshot is off on the local stack: a snapshot would keep personal data where
    erasure and retention never look (docs/GOVERNANCE.md)."""
    table = f"scratch_{uuid.uuid4().hex[:12]}"
    ks = stack.cassandra.keyspace
    with session(stack.cassandra, stack.cassandra.admin, ks) as sess:
        sess.execute(f"CREATE TABLE {table} (k text PRIMARY KEY, v text)")
        try:
            sess.execute(f"INSERT INTO {table} (k, v) VALUES ('someone', 'personal')")
            sess.execute(f"TRUNCATE {table}")
            assert list(sess.execute(f"SELECT * FROM {table}")) == []
        finally:
            sess.execute(f"DROP TABLE {table}")
    folders = list((stack.stack.stack_dir / "cassandra" / "data" / "data" / ks).glob(f"{table}-*"))
    assert folders != []  # the search looks where Cassandra keeps the table
    assert [p for folder in folders for p in folder.rglob("snapshots/*")] == []
