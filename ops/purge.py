"""Scheduled purge: what retention removes that no server removes by itself.

    python -m ops.purge [--mongo-only] [--dry-run]

- MongoDB: documents of randomUserCollection and anomalies whose ingestion_time is older
  than MONGO_RETENTION_DAYS (FerretDB has no TTL indexes; on a real MongoDB a TTL index
  would do the same). Documents without an ingestion_time are never purged here.
- Delta: table properties and VACUUM of the lake, through jobs/retention.py.
Cassandra needs nothing: its user tables carry a default TTL (ddl/cassandra/002_tables.cql),
and Kafka applies retention.ms. Run daily (docs/GOVERNANCE.md, section 5).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path

from pymongo.errors import PyMongoError

from common import clients
from common.settings import Settings, SettingsError, governance_settings, load

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ("randomUserCollection", "anomalies")


def retention_days(settings: Settings) -> int:
    return governance_settings(settings.env).mongo_retention_days


def purge_mongo(settings: Settings, now: dt.datetime, dry_run: bool = False) -> dict[str, int]:
    """Delete (or count, with dry_run) the documents older than the retention; per collection."""
    cutoff = now - dt.timedelta(days=retention_days(settings))
    query = {"ingestion_time": {"$lt": cutoff}}
    removed = {}
    with clients.mongo_client(settings, settings.mongo.writer) as client:
        db = client[settings.mongo.database]
        for name in COLLECTIONS:
            if dry_run:
                removed[name] = db[name].count_documents(query)
            else:
                removed[name] = db[name].delete_many(query).deleted_count
            log.info("%s.%s: %d document(s) older than %s", db.name, name, removed[name], cutoff.isoformat())
    return removed


def purge_delta() -> int:
    """jobs/retention.py through spark-submit (the Delta jars come with it)."""
    return subprocess.run(
        [str(ROOT / "scripts" / "spark-submit.sh"), str(ROOT / "jobs" / "retention.py")],
        cwd=ROOT,
        check=False,
    ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.purge", description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-only", action="store_true", help="skip the Delta lake")
    parser.add_argument("--dry-run", action="store_true", help="count what would go (MongoDB only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[purge] %(message)s")
    try:
        settings = load()
        removed = purge_mongo(settings, dt.datetime.now(dt.UTC), args.dry_run)
    except (SettingsError, PyMongoError) as exc:
        print(f"purge failed: {exc}", file=sys.stderr)
        return 1
    print(
        "mongo: " + ", ".join(f"{k} {v}" for k, v in removed.items()) + (" (dry run)" if args.dry_run else "")
    )
    if args.mongo_only or args.dry_run:
        return 0
    return purge_delta()


if __name__ == "__main__":
    sys.exit(main())
