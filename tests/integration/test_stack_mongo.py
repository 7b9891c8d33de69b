"""The local MongoDB-wire server (FerretDB) for real: SCRAM logins are enforced, documents
come back whole, data survives a restart, the indexes of ddl/mongo/collections.json exist.

FerretDB 1.x has users but no roles. What that means is asserted, not hidden: the tests
named `test_known_gap_*` pin the current behaviour (the reader can write) so that a move
to a server with roles shows up as a failing test to update, not as a silent change.

Documents are written under ids of their own (`zz-test-<uuid>`) and deleted afterwards.
The restart test is last in the file: it stops and starts the server through scripts/stack.sh.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from pydantic import SecretStr
from pymongo import MongoClient, ReplaceOne
from pymongo.errors import OperationFailure

from common.settings import Account, Settings
from ops.mongo_setup import USERS_DB, UserInfo, connect, load_ddl, server_info, users
from tests.conftest import run_stack

COLLECTION = "randomUserCollection"
UNAUTHORIZED = 13  # MongoDB's error code for "not authorized on ..."
AUTHENTICATION_FAILED = 18


def _user_document(doc_id: str) -> dict[str, Any]:
    # The shape the Spark job writes (nested values, dates, numbers, arrays).
    return {
        "_id": doc_id,
        "gender": "female",
        "name": {"title": "Ms", "first": "Aino", "last": "Korhonen"},
        "country": "Finland",
        "nat": "FI",
        "age": 41,
        "email_pseudo": "v1:3f1c0e4e5d6a",
        "coordinates": {"latitude": 60.1699, "longitude": 24.9384},
        "ingestion_time": datetime(2026, 1, 2, 3, 4, 5, 678000),
        "quality_flags": ["postcode_string"],
    }


def _client(settings: Settings, account: Account | None) -> MongoClient[dict[str, Any]]:
    return connect(settings, account)


def _anonymous_uri(settings: Settings) -> str:
    # The same server without credentials (also for an external MONGO_URI).
    return re.sub(r"//[^@/]*@", "//", settings.mongo.uri(None)).split("?")[0]


@pytest.fixture
def doc_id(stack: Settings) -> Iterator[str]:
    """An id no real document uses; its document is deleted after the test, whatever happened."""
    value = f"zz-test-{uuid.uuid4()}"
    yield value
    with _client(stack, stack.mongo.writer) as client:
        client[stack.mongo.database][COLLECTION].delete_one({"_id": value})


def test_writer_writes_and_reads_back_the_whole_document(stack: Settings, doc_id: str) -> None:
    doc = _user_document(doc_id)
    with _client(stack, stack.mongo.writer) as client:
        coll = client[stack.mongo.database][COLLECTION]
        coll.replace_one({"_id": doc_id}, doc, upsert=True)
        assert coll.find_one({"_id": doc_id}) == doc


def test_replace_upsert_batches_larger_than_the_connection_pool_complete(stack: Settings) -> None:
    # The Spark connector writes batches of up to 512 replace-upserts; unpatched FerretDB 1.24.2
    # held one backend connection per matched statement and hung past 100 (SQLite) or 50 (PostgreSQL).
    ids = [f"zz-test-{uuid.uuid4()}" for _ in range(150)]
    docs = [_user_document(i) for i in ids]
    with _client(stack, stack.mongo.writer) as client:
        coll = client[stack.mongo.database][COLLECTION]
        try:
            for _ in range(2):  # the second pass replaces existing documents, as a replay does
                coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
            assert sorted(coll.find({"_id": {"$in": ids}}), key=lambda d: d["_id"]) == sorted(
                docs, key=lambda d: d["_id"]
            )
        finally:
            coll.delete_many({"_id": {"$in": ids}})


def test_reader_reads_what_the_writer_wrote(stack: Settings, doc_id: str) -> None:
    doc = _user_document(doc_id)
    with _client(stack, stack.mongo.writer) as client:
        client[stack.mongo.database][COLLECTION].insert_one(doc)
    with _client(stack, stack.mongo.reader) as client:
        assert client[stack.mongo.database][COLLECTION].find_one({"_id": doc_id}) == doc


def test_unauthenticated_client_is_refused(stack: Settings) -> None:
    with MongoClient[dict[str, Any]](_anonymous_uri(stack), serverSelectionTimeoutMS=5000) as client:
        with pytest.raises(OperationFailure) as err:
            client[stack.mongo.database].list_collection_names()
        assert err.value.code == UNAUTHORIZED
        with pytest.raises(OperationFailure) as err:
            client[stack.mongo.database][COLLECTION].insert_one({"_id": f"zz-test-{uuid.uuid4()}"})
        assert err.value.code == UNAUTHORIZED


@pytest.mark.parametrize("role", ["admin", "writer", "reader"])
def test_wrong_password_is_refused(stack: Settings, role: str) -> None:
    account: Account = getattr(stack.mongo, role)
    with _client(
        stack, Account(account.user, SecretStr(account.password.get_secret_value() + "-wrong"))
    ) as client:
        with pytest.raises(OperationFailure) as err:
            client.admin.command("ping")
        assert err.value.code == AUTHENTICATION_FAILED


def test_indexes_of_the_ddl_exist(stack: Settings) -> None:
    expected = {
        name: {"_id_": [("_id", 1)]} | {m.document["name"]: list(m.document["key"].items()) for m in models}
        for name, models in load_ddl().items()
    }
    with _client(stack, stack.mongo.admin) as client:
        db = client[stack.mongo.database]
        actual = {
            name: {idx: [tuple(k) for k in info["key"]] for idx, info in db[name].index_information().items()}
            for name in expected
        }
    assert actual == expected


def test_accounts_and_their_roles(stack: Settings) -> None:
    with _client(stack, stack.mongo.admin) as client:
        server = server_info(client)
    m = stack.mongo
    expected_roles: dict[str, tuple[tuple[str, str], ...]]
    if server.supports_roles:  # a real MongoDB: least privilege, as ops.mongo_setup grants it
        expected_roles = {m.writer.user: (("readWrite", m.database),), m.reader.user: (("read", m.database),)}
    else:  # FerretDB 1.x: users exist, roles do not
        expected_roles = {m.writer.user: (), m.reader.user: ()}
    ours = [u for u in users(stack) if u.user in expected_roles]
    assert ours == sorted(
        (UserInfo(user=u, db=USERS_DB, roles=r) for u, r in expected_roles.items()), key=lambda u: u.user
    )


def test_known_gap_ferretdb_reader_can_write(stack: Settings, doc_id: str) -> None:
    """FerretDB 1.x enforces authentication, not authorization: the reader account can write.

    Least privilege for MongoDB holds only on a real MongoDB (MONGO_URI), where the reader
    has `read` only and the same insert is refused with code 13.
    """
    with _client(stack, stack.mongo.admin) as client:
        server = server_info(client)
    doc = _user_document(doc_id)
    with _client(stack, stack.mongo.reader) as client:
        coll = client[stack.mongo.database][COLLECTION]
        if server.supports_roles:
            with pytest.raises(OperationFailure) as err:
                coll.insert_one(doc)
            assert err.value.code == UNAUTHORIZED
            assert coll.find_one({"_id": doc_id}) is None
        else:
            coll.insert_one(doc)
            assert coll.find_one({"_id": doc_id}) == doc


def test_data_survives_a_restart(stack: Settings, doc_id: str) -> None:
    doc = _user_document(doc_id)
    with _client(stack, stack.mongo.writer) as client:
        client[stack.mongo.database][COLLECTION].insert_one(doc)
    run_stack("down", "ferretdb")
    run_stack("up", "ferretdb")
    with _client(stack, stack.mongo.reader) as client:
        assert client[stack.mongo.database][COLLECTION].find_one({"_id": doc_id}) == doc
