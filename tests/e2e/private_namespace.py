"""A topic, a keyspace and a database of one test module alone, beside the shared test namespace.

The replay and cluster tests compare whole stores; other e2e tests truncate the shared
test namespace (clean_stores) at any moment, and put records into the shared test topic
(some of thousands of users) that a job started from "our" offsets would read too. These
tests use a namespace nobody else does, made by the same setup code and DDL as the real one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from common.settings import Settings
from ops import kafka_admin
from ops.cassandra_setup import ddl_statements
from ops.mongo_setup import ensure_collections, load_ddl
from tests.e2e.conftest import USER_TABLES

COLLECTIONS = ("randomUserCollection", "anomalies")


@dataclass(frozen=True)
class Namespace:
    settings: Settings  # the test settings with this namespace's topic
    keyspace: str
    database: str

    def env(self) -> dict[str, str]:
        """What the job's environment needs to use this namespace instead of the shared one."""
        return {
            "KAFKA_TOPIC": self.settings.kafka.topic,
            "CASSANDRA_KEYSPACE": self.keyspace,
            "MONGO_DATABASE": self.database,
        }


def create_empty(s: Settings, cassandra_admin: Session, mongo_db: Any, name: str) -> Namespace:
    """Create (idempotent) and empty the namespace `name`; the job's accounts may use it."""
    kafka = dataclasses.replace(s.kafka, topic=f"random_user_data_{name}_test")
    kafka_admin.setup(kafka)  # the topic and its ACLs (grants on other topics are left alone)
    ns = Namespace(
        dataclasses.replace(s, kafka=kafka), f"random_user_keyspace_{name}_test", f"randomUserDB_{name}_test"
    )
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
