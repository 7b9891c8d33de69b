"""MongoDB accounts, collections and indexes: checked and set up the same way locally and on a real server.

The local server is FerretDB 1.x, which speaks the MongoDB wire protocol and SCRAM but has
no roles (every authenticated user may do everything). The writer and reader accounts are
still created, so that the same code gives them `readWrite`/`read` on a real MongoDB reached
through MONGO_URI; on FerretDB the missing roles are logged, never hidden.

    python -m ops.mongo_setup check|setup|users|version
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import IndexModel, MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from common.clients import mongo_client as connect
from common.settings import Account, Settings, load

log = logging.getLogger(__name__)

DDL_PATH = Path(__file__).resolve().parent.parent / "ddl" / "mongo" / "collections.json"
# The database that holds the accounts (the URIs use authSource=admin).
USERS_DB = "admin"

Document = dict[str, Any]


@dataclass(frozen=True)
class ServerInfo:
    """What the server says it is; FerretDB adds `ferretdbVersion` to buildInfo."""

    mongodb_version: str
    ferretdb_version: str | None

    @property
    def supports_roles(self) -> bool:
        return self.ferretdb_version is None

    def describe(self) -> str:
        if self.ferretdb_version:
            return f"FerretDB {self.ferretdb_version} (MongoDB {self.mongodb_version} wire)"
        return f"MongoDB {self.mongodb_version}"


@dataclass(frozen=True)
class UserInfo:
    user: str
    db: str
    roles: tuple[tuple[str, str], ...]  # (role, db)


def server_info(client: MongoClient[Document]) -> ServerInfo:
    info = client.admin.command("buildInfo")
    ferret = info.get("ferretdbVersion")
    return ServerInfo(mongodb_version=str(info.get("version", "?")), ferretdb_version=ferret)


def check(settings: Settings) -> str:
    """Authenticated ping as admin; raises with the server's reason when it fails."""
    with connect(settings, settings.mongo.admin) as client:
        client.admin.command("ping")  # authentication happens on the connection, before the ping
        return server_info(client).describe()


def load_ddl(path: Path = DDL_PATH) -> dict[str, list[IndexModel]]:
    """Collections and their indexes, validated as they enter."""
    spec = json.loads(path.read_text(encoding="utf-8"))
    collections = spec.get("collections")
    if not isinstance(collections, dict) or not collections:
        raise ValueError(f"{path}: 'collections' must be a non-empty object")
    result: dict[str, list[IndexModel]] = {}
    for name, body in collections.items():
        models = []
        for index in body.get("indexes", []):
            key = index.get("key")
            if not isinstance(key, dict) or not key or not all(v in (1, -1) for v in key.values()):
                raise ValueError(f"{path}: index {index.get('name')!r} of {name} has an invalid key {key!r}")
            models.append(IndexModel(list(key.items()), name=index["name"]))
        result[name] = models
    return result


def _roles_for(settings: Settings) -> dict[str, list[Document]]:
    db = settings.mongo.database
    return {
        settings.mongo.writer.user: [{"role": "readWrite", "db": db}],
        settings.mongo.reader.user: [{"role": "read", "db": db}],
    }


def _can_login(settings: Settings, account: Account) -> bool:
    try:
        with connect(settings, account) as client:
            client.admin.command("ping")
        return True
    except OperationFailure:
        return False


def ensure_user(
    settings: Settings,
    users_db: Database[Document],
    account: Account,
    roles: list[Document],
    server: ServerInfo,
) -> None:
    """Create the user, or bring its password (and roles) up to date; idempotent."""
    if not server.supports_roles and roles:
        log.warning(
            "%s has no roles: user %r is created without %s and can do whatever any user can",
            server.describe(),
            account.user,
            ", ".join(f"{r['role']}@{r['db']}" for r in roles),
        )
        roles = []
    existing = users_db.command("usersInfo", {"user": account.user, "db": users_db.name}).get("users", [])
    if not existing:
        users_db.command("createUser", account.user, pwd=account.password.get_secret_value(), roles=roles)
        log.info("created user %r", account.user)
        return
    changed = []
    # Locally a login tells whether the password changed; an external URI carries one account
    # only, so there the password is simply set again.
    if not settings.mongo.local or not _can_login(settings, account):
        users_db.command("updateUser", account.user, pwd=account.password.get_secret_value())
        changed.append("password")
    current = sorted((r["role"], r["db"]) for r in existing[0].get("roles", []))
    if server.supports_roles and current != sorted((r["role"], r["db"]) for r in roles):
        users_db.command("updateUser", account.user, roles=roles)
        changed.append("roles")
    log.info("user %r %s", account.user, f"updated ({', '.join(changed)})" if changed else "up to date")


def ensure_collections(db: Database[Document], ddl: dict[str, list[IndexModel]]) -> None:
    """Create missing collections and indexes; an index whose key changed is rebuilt."""
    existing = set(db.list_collection_names())
    for name, models in ddl.items():
        if name not in existing:
            db.create_collection(name)
            log.info("created collection %s.%s", db.name, name)
        collection = db[name]
        current = collection.index_information()
        missing = []
        for model in models:
            doc = model.document
            have = current.get(doc["name"])
            if have is not None and [tuple(k) for k in have["key"]] == list(doc["key"].items()):
                continue
            if have is not None:
                log.warning("index %s.%s changed its key: rebuilding it", name, doc["name"])
                collection.drop_index(doc["name"])
            missing.append(model)
        if missing:
            collection.create_indexes(missing)
            log.info("created indexes %s on %s", [m.document["name"] for m in missing], name)


def setup(settings: Settings) -> None:
    ddl = load_ddl()
    with connect(settings, settings.mongo.admin) as client:
        server = server_info(client)
        users_db = client[USERS_DB]
        roles = _roles_for(settings)
        for account in (settings.mongo.writer, settings.mongo.reader):
            ensure_user(settings, users_db, account, roles[account.user], server)
        ensure_collections(client[settings.mongo.database], ddl)


def users(settings: Settings) -> list[UserInfo]:
    """Every account of the users database with its roles (data for governance tests)."""
    with connect(settings, settings.mongo.admin) as client:
        reply = client[USERS_DB].command("usersInfo", 1)
    return sorted(
        (
            UserInfo(
                user=u["user"],
                db=u["db"],
                roles=tuple(sorted((r["role"], r["db"]) for r in u.get("roles", []))),
            )
            for u in reply.get("users", [])
        ),
        key=lambda u: (u.db, u.user),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.mongo_setup", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "setup", "users", "version"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[mongo] %(message)s", stream=sys.stderr)
    settings = load()
    try:
        if args.command == "check":
            print(f"ok: authenticated ping as {settings.mongo.admin.user} ({check(settings)})")
        elif args.command == "version":
            print(check(settings))
        elif args.command == "setup":
            setup(settings)
        else:
            rows = [
                {"user": u.user, "db": u.db, "roles": [list(r) for r in u.roles]} for u in users(settings)
            ]
            print(json.dumps(rows, indent=2))
    except PyMongoError as exc:
        reason = str(exc).splitlines()[0][:300]
        print(f"mongo {args.command} failed: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
