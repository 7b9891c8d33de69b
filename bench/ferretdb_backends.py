"""Compare FerretDB backends (SQLite vs PostgreSQL) on the work the Spark sink does.

The job replace-upserts users by `_id` in batches and the dashboard reads them back, so
that is what is timed: N Random-User-shaped documents upserted in batches of 500, the same
batches replayed (exactly-once replays hit existing `_id`s), a full read, an indexed query.

    python -m bench.ferretdb_backends --uri mongodb://127.0.0.1:27100/ --label sqlite
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

from pymongo import ASCENDING, MongoClient, ReplaceOne
from pymongo.collection import Collection

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
        coll.create_index([("nat", ASCENDING), ("gender", ASCENDING)], name="nat_1_gender_1")

        def upsert_all() -> None:
            for start in range(0, n, batch):
                ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs[start : start + batch]]
                coll.bulk_write(ops, ordered=False)

        timed("upsert_new_s", results, upsert_all)
        timed("upsert_replay_s", results, upsert_all)
        read = timed("read_all_s", results, lambda: {d["_id"]: d for d in coll.find({})})
        assert read == {d["_id"]: d for d in docs}, "documents read back differ from those written"
        timed("indexed_query_s", results, lambda: list(coll.find({"nat": "FR", "gender": "female"})))
        client.drop_database("bench")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"[{args.label}] %(message)s")
    print(json.dumps({"backend": args.label, "n": args.n, **run(args.uri, args.n, args.batch)}))


if __name__ == "__main__":
    main()
