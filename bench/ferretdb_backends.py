"""Compare FerretDB backends (SQLite vs PostgreSQL) on the work the Spark sink does.

The job inserts users by their deterministic `_id` with unordered `insert_many` in chunks of
1,000, skipping duplicate keys (jobs/io/mongo.py), and the dashboard reads them back, so that
is what is timed: N Random-User-shaped documents inserted into a collection with the users
collection's indexes, the same inserts again (a rerun after a crash: every one a duplicate),
a full read, an indexed query.

    python -m bench.ferretdb_backends --label sqlite      # the local stack's FerretDB, as admin

writes bench/results/ferretdb_backend_LABEL.json, with the CPU FerretDB (and its PostgreSQL)
spent. Switch the backend with `scripts/stack.sh down ferretdb` and
`FERRETDB_BACKEND=postgresql scripts/stack.sh up ferretdb` (docs/stack/ferretdb.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from bench import harness

log = logging.getLogger(__name__)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "randomuser"


def make_documents(n: int) -> list[dict[str, Any]]:
    """N documents built from the real API fixtures, each with a fresh deterministic `_id`."""
    base = []
    for path in sorted(FIXTURES.glob("nat-*.json")):
        base.extend(json.loads(path.read_text(encoding="utf-8"))["results"])
    docs = []
    for i in range(n):
        user = copy.deepcopy(base[i % len(base)])
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{i}"))
        user["login"]["uuid"] = uid
        user.update(
            _id=uid,
            country=user["location"]["country"],
            email_pseudo=f"v1:{uid.replace('-', '')}",
            ingestion_time=1_700_000_000_000 + i,
        )
        docs.append(user)
    return docs


def timed(label: str, results: dict[str, float], fn: Any) -> Any:
    t0 = time.perf_counter()
    value = fn()
    results[label] = round(time.perf_counter() - t0, 2)
    log.info("%s: %.2fs", label, results[label])
    return value


def run(uri: str, n: int, batch: int) -> dict[str, float]:
    docs = make_documents(n)
    results: dict[str, float] = {}
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database("bench")
        coll: Collection[dict[str, Any]] = client.bench.users
        coll.create_index([("country", ASCENDING)], name="country_1")
        coll.create_index([("ingestion_time", DESCENDING)], name="ingestion_time_-1")
        coll.create_index([("nat", ASCENDING), ("gender", ASCENDING)], name="nat_1_gender_1")
        coll.create_index([("email_pseudo", ASCENDING)], name="email_pseudo_1")

        def insert_all() -> None:
            for start in range(0, n, batch):
                try:
                    coll.insert_many(docs[start : start + batch], ordered=False)
                except BulkWriteError as exc:  # duplicates only, as the job skips them
                    if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                        raise

        timed("insert_new_s", results, insert_all)
        timed("insert_replay_s", results, insert_all)
        read = timed("read_all_s", results, lambda: {d["_id"]: d for d in coll.find({})})
        assert read == {d["_id"]: d for d in docs}, "documents read back differ from those written"
        timed("indexed_query_s", results, lambda: list(coll.find({"nat": "FR", "gender": "female"})))
        client.drop_database("bench")
    return results


def server_cpu_s() -> float:
    """CPU seconds FerretDB and a PostgreSQL backend have used so far (their live processes)."""
    roles = ("mongo server (FerretDB)", "mongo backend (PostgreSQL)")
    return sum(ticks for _, role, _, ticks in harness._processes() if role in roles) / harness.TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", help="MongoDB URI (default: the local stack's, as its admin)")
    parser.add_argument("--label", required=True, help="the backend: sqlite or postgresql")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"[{args.label}] %(message)s")
    mongo = harness.settings().mongo
    cpu0 = server_cpu_s()
    results = run(args.uri or mongo.uri(mongo.admin), args.n, args.batch)
    harness.write_result(
        f"ferretdb_backend_{args.label}",
        {
            "backend": args.label,
            "n": args.n,
            "batch": args.batch,
            **results,
            "server_cpu_s": round(server_cpu_s() - cpu0, 1),
        },
    )


if __name__ == "__main__":
    main()
