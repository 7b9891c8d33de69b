"""The access matrix of docs/GOVERNANCE.md equals the grants the servers really hold.

Privileges are compared, not only account names, in the configured namespace (the test
run's own topic, keyspace and database): an extra grant on a server, or a matrix row the
server lacks, fails here.
"""

from __future__ import annotations

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

from common import clients
from common.settings import Settings, eraser_account
from ops import access_matrix, cassandra_setup, kafka_admin, mongo_setup


def test_cassandra_grants_equal_the_matrix(stack: Settings) -> None:
    c = stack.cassandra
    eraser = eraser_account(stack.env)
    assert eraser is not None, "CASSANDRA_ERASER_USER/PASSWORD missing from .env"
    app_roles = {c.writer.user, c.reader.user, eraser.user}
    real = {
        (g.role, g.resource, g.permission)
        for g in cassandra_setup.grants(c)
        if g.role != c.admin.user and cassandra_setup.in_scope(g.resource, c.keyspace)
    }
    # Every grant in this keyspace (and cluster-wide) belongs to an application role of the
    # matrix: the disabled default role and any stray role hold nothing.
    assert {role for role, _, _ in real} <= app_roles
    assert real == access_matrix.expected("cassandra", stack.env)


def test_cassandra_default_superuser_is_disabled_and_the_eraser_cannot_read_other_tables(
    stack: Settings,
) -> None:
    c = stack.cassandra
    with clients.cassandra_session(c, c.admin) as sess:
        row = sess.execute(
            "SELECT is_superuser, can_login FROM system_auth.roles WHERE role = 'cassandra'"
        ).one()
    assert row is not None and (row.is_superuser, row.can_login) == (False, False)
    eraser = eraser_account(stack.env)
    assert eraser is not None
    cluster = Cluster(
        list(c.hosts),
        port=c.port,
        auth_provider=PlainTextAuthProvider(eraser.user, eraser.password.get_secret_value()),
    )
    try:
        sess = cluster.connect(c.keyspace)
        sess.execute("SELECT user_id FROM random_user_table LIMIT 1")  # allowed
        refused = []
        for statement in (
            "SELECT country FROM country_stats LIMIT 1",
            "INSERT INTO country_stats (country, count_users) VALUES ('x-eraser-test', 1)",
            "SELECT day FROM latest_users LIMIT 1",
        ):
            try:
                sess.execute(statement)
            except Exception as exc:  # the driver raises Unauthorized
                refused.append(type(exc).__name__)
        assert refused == ["Unauthorized", "Unauthorized", "Unauthorized"]
    finally:
        cluster.shutdown()


def test_kafka_acls_equal_the_matrix(stack: Settings) -> None:
    k = stack.kafka
    scoped = kafka_admin.scoped_grants(k, kafka_admin.real_grants(k))
    assert {(g.permission, g.host) for g in scoped} == {("ALLOW", "*")}
    real = {
        (
            g.principal.removeprefix("User:"),
            f"{g.resource_type}:{g.resource_name} ({g.pattern_type})",
            g.operation,
        )
        for g in scoped
    }
    assert real == access_matrix.expected("kafka", stack.env)


def test_mongo_users_equal_the_matrix_and_the_unenforced_roles_are_declared(stack: Settings) -> None:
    with clients.mongo_client(stack, stack.mongo.admin) as client:
        server = mongo_setup.server_info(client)
    users = {u.user: u for u in mongo_setup.users(stack) if u.db == mongo_setup.USERS_DB}
    wanted = access_matrix.expected("mongo", stack.env)
    assert {account for account, _, _ in wanted} | {stack.mongo.admin.user} == set(users)
    entries = [e for e in access_matrix.MATRIX if e.system == "mongo"]
    if server.supports_roles:
        real = {
            (u.user, db, role)
            for u in users.values()
            for role, db in u.roles
            if u.user != stack.mongo.admin.user
        }
        assert real == wanted
    else:
        # FerretDB: the users exist without roles, and the matrix says the roles are not enforced.
        assert {u.user: u.roles for u in users.values()} == {name: () for name in users}
        assert [e.enforced for e in entries] == [False] * len(entries)
