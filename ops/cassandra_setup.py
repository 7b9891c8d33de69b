"""Cassandra accounts, schema and grants: checked and set up the same way locally and on a cluster.

A fresh node only knows the default superuser `cassandra`/`cassandra`, a password anyone can
guess. `setup` replaces it with CASSANDRA_ADMIN_USER, disables the default role (no login, no
superuser, a random password), applies ddl/cassandra/*.cql and gives the two application
roles exactly the permissions they need: spark_writer MODIFY+SELECT, dashboard_reader SELECT,
both on the keyspace only; eraser (CASSANDRA_ERASER_USER, the right to erasure) MODIFY on the
two user tables and SELECT on random_user_table only. Every step is idempotent, so
`scripts/stack.sh up` runs it each time.
With CASSANDRA_HOSTS set (an external cluster) the same steps run as the admin account.

    python -m ops.cassandra_setup ready|check|setup|grants
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bcrypt
from cassandra import (
    AuthenticationFailed,
    DriverException,
    RequestExecutionException,
    RequestValidationException,
)
from cassandra.cluster import NoHostAvailable, Session
from pydantic import SecretStr

from common.clients import cassandra_session as session
from common.settings import Account, CassandraSettings, eraser_account, load
from contract import tables

log = logging.getLogger(__name__)

DDL_DIR = Path(__file__).resolve().parent.parent / "ddl" / "cassandra"
DEFAULT_ROLE = Account("cassandra", SecretStr("cassandra"))
# A fresh node creates the default role shortly after it opens the CQL port (`ready` waits for
# it already; this only covers a setup run straight after a start).
DEFAULT_ROLE_WAIT_S = 30.0
PASSWORD_RATE_LIMIT_WAIT_S = 15.0
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class SetupError(RuntimeError):
    """Setup cannot continue; the message says why and what to do."""


@dataclass(frozen=True, order=True)
class Grant:
    """One permission of one role on one resource, as Cassandra reports it."""

    role: str
    resource: str  # e.g. "<keyspace random_user_keyspace>", "<table ks.t>", "<all keyspaces>"
    permission: str  # e.g. "SELECT", "MODIFY"


def _identifier(name: str, what: str) -> str:
    # Role and keyspace names are spliced into CQL (they cannot be bind markers): allow plain names only.
    if not _IDENTIFIER.match(name):
        raise SetupError(f"{what} {name!r} must be a plain CQL identifier ([A-Za-z][A-Za-z0-9_]*)")
    return name


def auth_failed(exc: BaseException) -> bool:
    """True when the server answered and refused the credentials (not when it is unreachable)."""
    if isinstance(exc, AuthenticationFailed):
        return True
    if isinstance(exc, NoHostAvailable):
        errors = exc.errors.values() if isinstance(exc.errors, dict) else []
        return any(isinstance(e, AuthenticationFailed) for e in errors)
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NoHostAvailable) and isinstance(exc.errors, dict) and exc.errors:
        return "; ".join(f"{host}: {err}" for host, err in exc.errors.items())
    return f"{type(exc).__name__}: {exc}"


def release_version(settings: CassandraSettings, account: Account) -> str:
    with session(settings, account) as sess:
        row = sess.execute("SELECT release_version FROM system.local").one()
    return str(row.release_version)


def check(settings: CassandraSettings) -> str:
    """One line for status: an authenticated query as the admin proves the node serves requests."""
    version = release_version(settings, settings.admin)
    return f"Cassandra {version}"


def ready(settings: CassandraSettings) -> str:
    """Start-up readiness: the admin can log in, or (fresh local node) the default role can."""
    try:
        return f"{check(settings)} (admin login)"
    except NoHostAvailable as exc:
        if not (settings.local and auth_failed(exc)):
            raise
    version = release_version(settings, DEFAULT_ROLE)
    return f"Cassandra {version} (fresh node: default role answers, setup pending)"


def _set_password(sess: Session, statement: str, password: str) -> None:
    """ALTER ROLE ... PASSWORD, waiting out Cassandra 5's limit of one password change per role
    every 5 s (the server answers "Coordinator node overloaded ... can only be changed every 5000ms")."""
    deadline = time.monotonic() + PASSWORD_RATE_LIMIT_WAIT_S
    while True:
        try:
            sess.execute(statement, (password,))
            return
        except NoHostAvailable as exc:
            if "can only be changed every" not in str(exc) or time.monotonic() > deadline:
                raise
            log.info("password changed moments ago, waiting for the server's rate limit")
            time.sleep(1)


def _role_row(sess: Session, role: str) -> Any:
    return sess.execute(
        "SELECT role, can_login, is_superuser, salted_hash FROM system_auth.roles WHERE role = %s", (role,)
    ).one()


def _password_matches(row: Any, password: str) -> bool:
    stored = row.salted_hash or ""
    if not stored:
        return False
    return bcrypt.checkpw(password.encode(), stored.encode())


def _bootstrap_admin(settings: CassandraSettings) -> str:
    """Create the admin as the default role (fresh local node only)."""
    admin = settings.admin
    deadline = time.monotonic() + DEFAULT_ROLE_WAIT_S
    while True:
        try:
            with session(settings, DEFAULT_ROLE) as sess:
                sess.execute(
                    f"CREATE ROLE IF NOT EXISTS {admin.user} WITH SUPERUSER = true AND LOGIN = true "
                    "AND PASSWORD = %s",
                    (admin.password.get_secret_value(),),
                )
                # The role may exist from an earlier run with another password.
                _set_password(
                    sess,
                    f"ALTER ROLE {admin.user} WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = %s",
                    admin.password.get_secret_value(),
                )
            return f"created admin role {admin.user}"
        except NoHostAvailable as exc:
            if time.monotonic() > deadline:
                raise SetupError(
                    f"cannot log in as {admin.user} nor as the default role ({_reason(exc)}). "
                    "If CASSANDRA_ADMIN_PASSWORD changed after the first setup, restore the old value, "
                    "or wipe the local node with `scripts/stack.sh reset cassandra`."
                ) from exc
            log.info("default role not ready yet (%s), retrying", _reason(exc))
            time.sleep(2)


def _disable_default_role(sess: Session) -> str:
    """No login, no superuser, a random password, and none of the grants it got as creator of the admin."""
    role = DEFAULT_ROLE.user
    row = _role_row(sess, role)
    if row is None:
        return "default role absent"
    leftover = role_grants(sess, role)
    for grant in sorted(leftover):
        sess.execute(f"REVOKE {grant.permission} ON {resource_cql(grant.resource)} FROM {role}")
    if not (
        row.is_superuser or row.can_login or _password_matches(row, DEFAULT_ROLE.password.get_secret_value())
    ):
        return "default role already disabled" + (f" ({len(leftover)} grants revoked)" if leftover else "")
    _set_password(
        sess,
        f"ALTER ROLE {role} WITH SUPERUSER = false AND LOGIN = false AND PASSWORD = %s",
        secrets.token_urlsafe(32),
    )
    return "default role disabled"


def ddl_statements(keyspace: str, replication_cql: str, ddl_dir: Path = DDL_DIR) -> list[str]:
    """The statements of ddl/cassandra/*.cql, in file order, placeholders filled in.

    Whole-line `--` comments are dropped and statements end with `;` (the files hold no
    string literal with a `;` or a line starting with `--`).
    """
    files = sorted(ddl_dir.glob("*.cql"))
    if not files:
        raise SetupError(f"no *.cql files in {ddl_dir}")
    statements: list[str] = []
    for path in files:
        text = "\n".join(
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.strip().startswith("--")
        )
        text = text.replace("{keyspace}", keyspace).replace("{replication}", replication_cql)
        statements.extend(part.strip() for part in text.split(";") if part.strip())
    return statements


def _ensure_login_role(sess: Session, account: Account) -> str:
    role = _identifier(account.user, "role")
    row = _role_row(sess, role)
    if row is None:
        sess.execute(
            f"CREATE ROLE IF NOT EXISTS {role} WITH LOGIN = true AND SUPERUSER = false AND PASSWORD = %s",
            (account.password.get_secret_value(),),
        )
        return f"{role} created"
    if row.can_login and not row.is_superuser and _password_matches(row, account.password.get_secret_value()):
        return f"{role} unchanged"
    _set_password(
        sess,
        f"ALTER ROLE {role} WITH LOGIN = true AND SUPERUSER = false AND PASSWORD = %s",
        account.password.get_secret_value(),
    )
    return f"{role} updated"


_RESOURCE_CQL = [
    (re.compile(r"^<all keyspaces>$"), "ALL KEYSPACES"),
    (re.compile(r"^<keyspace (\w+)>$"), "KEYSPACE {0}"),
    (re.compile(r"^<table (\w+)\.(\w+)>$"), "TABLE {0}.{1}"),
    (re.compile(r"^<all roles>$"), "ALL ROLES"),
    (re.compile(r"^<role (\w+)>$"), "ROLE {0}"),
    (re.compile(r"^<all functions>$"), "ALL FUNCTIONS"),
    (re.compile(r"^<all functions in (\w+)>$"), "ALL FUNCTIONS IN KEYSPACE {0}"),
    (re.compile(r"^<all mbeans>$"), "ALL MBEANS"),
]


def resource_cql(resource: str) -> str:
    """`<keyspace ks>` (how LIST PERMISSIONS prints it) -> `KEYSPACE ks` (how REVOKE wants it)."""
    for pattern, template in _RESOURCE_CQL:
        match = pattern.match(resource)
        if match:
            return template.format(*match.groups())
    raise SetupError(f"unexpected grant on {resource}: revoke it by hand, then rerun setup")


def role_grants(sess: Session, role: str) -> set[Grant]:
    """Permissions granted to `role` itself (rows inherited through another role are dropped)."""
    rows = sess.execute(f"LIST ALL PERMISSIONS OF {role} NORECURSIVE")
    return {Grant(r.role, r.resource, r.permission) for r in rows if r.role == role}


def grants(settings: CassandraSettings) -> list[Grant]:
    """Every permission of every role, read back from the server (for governance checks)."""
    with session(settings, settings.admin) as sess:
        rows = sess.execute("LIST ALL PERMISSIONS")
        return sorted(Grant(r.role, r.resource, r.permission) for r in rows)


# The eraser (python -m jobs.erase) deletes a person's rows from the user tables only: it
# reads a partition's clustering keys in random_user_table to find the latest_users rows.
# Cassandra has no DELETE permission: MODIFY (INSERT, UPDATE, DELETE, TRUNCATE) is the least.
# Which tables and permissions: the erasure rules of contract/tables.py.
ERASER_TABLES: dict[str, tuple[str, ...]] = {
    t.name: tuple(permission for permission, _ in t.eraser) for t in tables.TABLES if t.eraser
}


def desired_grants(settings: CassandraSettings, eraser: Account | None = None) -> dict[str, set[Grant]]:
    keyspace = f"<keyspace {settings.keyspace}>"
    writer, reader = settings.writer.user, settings.reader.user
    wanted = {
        writer: {Grant(writer, keyspace, "MODIFY"), Grant(writer, keyspace, "SELECT")},
        reader: {Grant(reader, keyspace, "SELECT")},
    }
    if eraser is not None:
        wanted[eraser.user] = {
            Grant(eraser.user, f"<table {settings.keyspace}.{table}>", permission)
            for table, permissions in ERASER_TABLES.items()
            for permission in permissions
        }
    return wanted


# No application role may hold anything on these: always in scope, always revoked.
SYSTEM_KEYSPACES = frozenset(
    {
        "system",
        "system_auth",
        "system_schema",
        "system_distributed",
        "system_traces",
        "system_views",
        "system_virtual_schema",
    }
)
_KEYSPACE_OF = re.compile(r"^<(?:keyspace |table |all functions in |function )(\w+)[.>(]")


def in_scope(resource: str, keyspace: str) -> bool:
    """Whether this setup owns grants on `resource`: its own keyspace (and the tables and
    functions in it) and every cluster-wide resource. Grants on another keyspace belong to
    the deployment that uses it (e.g. a test keyspace on the same node) and are left alone,
    except on Cassandra's own system keyspaces."""
    match = _KEYSPACE_OF.match(resource)
    return match is None or match.group(1) in {keyspace, *SYSTEM_KEYSPACES}


def _apply_grants(sess: Session, role: str, wanted: set[Grant], keyspace: str) -> str:
    # Permissions inherited from other roles would widen the grant: allow no membership.
    for row in sess.execute(f"LIST ROLES OF {role} NORECURSIVE"):
        if row.role != role:
            sess.execute(f"REVOKE {_identifier(row.role, 'role')} FROM {role}")
    current = {g for g in role_grants(sess, role) if in_scope(g.resource, keyspace)}
    for extra in sorted(current - wanted):
        sess.execute(f"REVOKE {extra.permission} ON {resource_cql(extra.resource)} FROM {role}")
    for missing in sorted(wanted - current):
        sess.execute(f"GRANT {missing.permission} ON {resource_cql(missing.resource)} TO {role}")
    final = {g for g in role_grants(sess, role) if in_scope(g.resource, keyspace)}
    if final != wanted:
        raise SetupError(f"grants of {role} are {sorted(final)}, expected {sorted(wanted)}")
    return f"{role} ({', '.join(sorted(g.permission for g in final))})"


def setup(settings: CassandraSettings, eraser: Account | None = None) -> str:
    """Idempotent: admin, default role off, schema, application roles with exact grants."""
    admin = settings.admin
    _identifier(admin.user, "CASSANDRA_ADMIN_USER")
    keyspace = _identifier(settings.keyspace, "CASSANDRA_KEYSPACE")
    accounts = [settings.writer, settings.reader] + ([eraser] if eraser is not None else [])
    if DEFAULT_ROLE.user in {admin.user, *(a.user for a in accounts)}:
        raise SetupError("the accounts must not be named `cassandra` (that default role gets disabled)")
    steps: list[str] = []
    try:
        release_version(settings, admin)
    except NoHostAvailable as exc:
        if not auth_failed(exc):
            raise SetupError(f"Cassandra unreachable: {_reason(exc)}") from exc
        if not settings.local:
            raise SetupError(f"external cluster refuses {admin.user}: {_reason(exc)}") from exc
        steps.append(_bootstrap_admin(settings))

    with session(settings, admin) as sess:
        steps.append(_disable_default_role(sess))
        statements = ddl_statements(keyspace, settings.replication_cql)
        for statement in statements:
            sess.execute(statement)
        steps.append(f"schema {keyspace} ({len(statements)} statements)")
        roles = []
        for account in accounts:
            steps.append(_ensure_login_role(sess, account))
        for role, wanted in desired_grants(settings, eraser).items():
            roles.append(_apply_grants(sess, role, wanted, keyspace))
        steps.append("grants " + ", ".join(roles))
    return "setup ok: " + "; ".join(steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.cassandra_setup", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["ready", "check", "setup", "grants"])
    parser.add_argument("-v", "--verbose", action="store_true", help="log the driver too")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        # The driver logs every refused or retried connection; the one-line result says it all.
        logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    loaded = load()
    settings = loaded.cassandra
    try:
        if args.command == "ready":
            print(ready(settings))
        elif args.command == "check":
            print(check(settings))
        elif args.command == "setup":
            print(setup(settings, eraser_account(loaded.env)))
        else:
            print(json.dumps([asdict(g) for g in grants(settings)], indent=2))
    except NoHostAvailable as exc:
        print(f"cassandra {args.command} failed: {_reason(exc)}")
        return 1
    except (RequestExecutionException, RequestValidationException, DriverException) as exc:
        print(f"cassandra {args.command} failed: {type(exc).__name__}: {exc}")
        return 1
    except (SetupError, OSError) as exc:
        print(f"cassandra {args.command} failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
