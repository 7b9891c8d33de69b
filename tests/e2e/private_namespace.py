"""A keyspace and a database of one test module alone, next to the shared test namespace.

The replay and cluster tests compare whole stores; other e2e tests truncate the shared
test namespace (clean_stores) at any moment when several run at once. These tests write
into a namespace nobody else uses, built by the same DDL as the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from common.settings import Settings
from ops.cassandra_setup import ddl_statements
from ops.mongo_setup import ensure_collections, load_ddl
from tests.e2e.conftest import USER_TABLES

COLLECTIONS = ("randomUserCollection", "anomalies")


@dataclass(frozen=True)
class Namespace:
    keyspace: str
    database: str

    def env(self) -> dict[str, str]:
        """What the job's environment needs to write here instead of the shared test namespace."""
        return {"CASSANDRA_KEYSPACE": self.keyspace, "MONGO_DATABASE": self.database}


def create_empty(s: Settings, cassandra_admin: Session, mongo_db: Any, name: str) -> Namespace:
    """Create (idempotent) and empty the namespace `name`; the job's writer may write it."""
    ns = Namespace(f"random_user_keyspace_{name}_test", f"randomUserDB_{name}_test")
    for statement in ddl_statements(ns.keyspace, s.cassandra.replication_cql):
        cassandra_admin.execute(statement)
    for permission in ("MODIFY", "SELECT"):
        cassandra_admin.execute(f"GRANT {permission} ON KEYSPACE {ns.keyspace} TO {s.cassandra.writer.user}")
    ensure_collections(mongo_db.client[ns.database], load_ddl())
    wipe(cassandra_admin, mongo_db, ns)
    return ns


def wipe(cassandra_admin: Session, mongo_db: Any, ns: Namespace) -> None:
    """Every table and collection of the namespace emptied."""
    for table in USER_TABLES:
        cassandra_admin.execute(f"TRUNCATE {ns.keyspace}.{table}")
    for collection in COLLECTIONS:
        mongo_db.client[ns.database][collection].delete_many({})
