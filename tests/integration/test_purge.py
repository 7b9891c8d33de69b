"""ops.purge on the real MongoDB: documents older than the retention go, newer ones stay."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from common import clients
from common.settings import Settings, SettingsError
from ops import purge

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _with_env(s: Settings, **env: str) -> Settings:
    return s.__class__(**{**s.__dict__, "env": {**s.env, **env}})


def test_mongo_documents_older_than_the_retention_are_purged(stack: Settings) -> None:
    s = _with_env(stack, MONGO_RETENTION_DAYS="30")
    tag = uuid.uuid4().hex[:8]
    ages = {"fresh": 1, "edge": 29, "old": 31, "ancient": 400}
    docs = {
        name: {"_id": f"purge-{tag}-{name}", "ingestion_time": NOW - dt.timedelta(days=days), "marker": tag}
        for name, days in ages.items()
    }
    undated = {"_id": f"purge-{tag}-undated", "marker": tag}
    with clients.mongo_client(s, s.mongo.admin) as client:
        db = client[s.mongo.database]
        try:
            for name in purge.COLLECTIONS:
                db[name].insert_many([*docs.values(), undated])
            counted = purge.purge_mongo(s, NOW, dry_run=True)
            assert all(counted[name] >= 2 for name in purge.COLLECTIONS)
            assert {
                name: db[name].count_documents({"marker": tag}) for name in purge.COLLECTIONS
            } == dict.fromkeys(purge.COLLECTIONS, 5)
            purge.purge_mongo(s, NOW)
            left = {
                name: sorted(d["_id"] for d in db[name].find({"marker": tag})) for name in purge.COLLECTIONS
            }
            want = sorted(str(d["_id"]) for d in (docs["fresh"], docs["edge"], undated))
            assert left == dict.fromkeys(purge.COLLECTIONS, want)
        finally:
            for name in purge.COLLECTIONS:
                db[name].delete_many({"marker": tag})


def test_retention_settings_are_validated(settings: Settings) -> None:
    for bad in ("0", "soon"):
        with pytest.raises(SettingsError, match="MONGO_RETENTION_DAYS"):
            purge.retention_days(_with_env(settings, MONGO_RETENTION_DAYS=bad))
    assert purge.retention_days(_with_env(settings, MONGO_RETENTION_DAYS="")) == 30
