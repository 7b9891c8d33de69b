"""A micro-batch holding a record that makes processing fail every time, on the real job.

The record: a valid user fetched (meta.fetched_at) in 1899. Every quality rule passes (its
ages agree with its dates), the serving stores take it, but Delta refuses to write a
timestamp before 1900 into Parquet (Spark's WRITE_ANCIENT_DATETIME): the lake query's silver
MERGE fails the same way on every attempt. Nothing in the job is there for the test.

Expected: the error blames the data (a Spark error class of jobs.io.retry.DATA_ERROR_CLASSES),
so the lake batch is processed in parts after its first failure (never retried whole, the
query never restarted) and the record alone is tried once; every good user of the batch
reaches every store exactly once, the record is in the quarantine (Delta and Mongo) as
processing_failed with its error, an alert is raised, and later batches go on. An error that
does not blame the data is retried POISON_BATCH_ATTEMPTS times first: tests/unit/test_poison_batches.py.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow.parquet as pq
from cassandra.cluster import Session

from common.settings import Settings
from ops import lag
from tests.e2e.conftest import JobRunner, end_offsets, offsets_json, produce, wait_for
from tests.unit.bronze_rows import encode, envelope, load_users


def delta_table(table: Path) -> list[dict[str, Any]]:
    """Every row of a Delta table's current version, all columns of each data file (pyarrow)."""
    log = table / "_delta_log"
    commits = sorted(p for p in log.iterdir() if re.fullmatch(r"\d{20}\.json", p.name))
    files: dict[str, None] = {}
    for commit in commits:
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[unquote(action["add"]["path"])] = None
            elif "remove" in action:
                files.pop(unquote(action["remove"]["path"]), None)
    return [row for path in files for row in pq.read_table(table / path).to_pylist()]


def message(fixtures_dir: Path, name: str, seq: int, **fields: Any) -> tuple[dict[str, Any], list[Any]]:
    info, users = load_users(fixtures_dir, name)
    return envelope(users, batch_id=str(uuid.uuid4()), seq=seq, info=info, source="api", **fields), users


def test_a_record_that_always_fails_is_quarantined_and_the_rest_of_its_batch_delivered_once(
    clean_stores: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    s = clean_stores
    start = end_offsets(s)
    us, us_users = message(fixtures_dir, "nat-US.json", 0)
    de, de_users = message(fixtures_dir, "nat-DE.json", 1)
    de["results"][0]["email"] = "not-an-email"  # quarantined by a rule: in the Delta quarantine once
    _, fr_users = load_users(fixtures_dir, "nat-FR.json")
    ancient = copy.deepcopy(fr_users[0])
    ancient["dob"] = {"date": "1850-06-15T10:00:00.000Z", "age": 49}
    ancient["registered"] = {"date": "1890-06-15T10:00:00.000Z", "age": 9}
    poison = envelope([ancient], batch_id=str(uuid.uuid4()), seq=2, fetched_at="1899-12-31T12:00:00.000Z")
    poison_value = encode(poison)
    # One lake batch: all three records are in the topic before the job starts.
    produce(s, [(m["meta"]["batch_id"], encode(m)) for m in (us, poison, de)])
    after_first = end_offsets(s)
    good = [u["login"]["uuid"] for u in us_users + de_users[1:]]
    served = [*good, ancient["login"]["uuid"]]  # the serving query has nothing against 1899

    job = JobRunner(
        tmp_path,
        offsets_json(s, start),
        extra_env={"ALERT_FILE": str(tmp_path / "alerts.json")},  # POISON_BATCH_ATTEMPTS: the default
    )
    proc = job.start()
    t0 = time.monotonic()
    try:

        def lake_split_done() -> bool:
            assert proc.poll() is None, f"job exited {proc.returncode}:\n{job.log_text()[-4000:]}"
            return "quarantined as processing_failed)" in job.log_text()

        wait_for(lake_split_done, 600, "the failing lake batch processed in parts")
        split_s = time.monotonic() - t0
        # The stream goes on: a later batch is delivered everywhere.
        gb, gb_users = message(fixtures_dir, "nat-GB.json", 3)
        produce(s, [(gb["meta"]["batch_id"], encode(gb))])
        good += [u["login"]["uuid"] for u in gb_users]
        served += [u["login"]["uuid"] for u in gb_users]

        def stats() -> int:
            return sum(
                r.count_users for r in cassandra_admin.execute("SELECT count_users FROM country_stats")
            )

        def users_served() -> int:
            return int(mongo_db["randomUserCollection"].count_documents({}))

        def lake_done() -> bool:  # the lake committed every record: its batch wrote all it writes
            return lag.lag(s.kafka, tmp_path / "checkpoints" / "lake").total == 0

        wait_for(
            lambda: stats() == len(good) and users_served() == len(served) and lake_done(),
            300,
            "the later batch",
        )
        log = job.log_text()
    finally:
        job.kill(proc)
    print(f"split done after {split_s:.0f}s, whole test job {time.monotonic() - t0:.0f}s")

    # The failure blamed the data: the batch was split at its first failure, no write retried,
    # the query never restarted.
    assert re.search(
        r"lake batch 0 failed 1 time \(org\.apache\.spark\.SparkUpgradeException: "
        r"\[INCONSISTENT_BEHAVIOR_CROSS_VERSION\.WRITE_ANCIENT_DATETIME\].*processing it in parts",
        log,
    )
    assert "sink silver failed with an error of its data while every server answers" in log
    assert "sink silver failed (attempt" not in log and "query lake failed" not in log

    # Serving stores: every served user exactly once (one row per user and fetch).
    rows = Counter(r.user_id for r in cassandra_admin.execute("SELECT user_id FROM random_user_table"))
    assert rows == Counter(served)
    latest = Counter(r.user_id for r in cassandra_admin.execute("SELECT user_id FROM latest_users"))
    assert latest == Counter(served)
    assert sorted(d["_id"] for d in mongo_db["randomUserCollection"].find({}, {"_id": 1})) == sorted(served)

    # The lake: silver and the statistics hold each good user once, never the failed record.
    lake = tmp_path / "lake"
    assert Counter(r["user_id"] for r in delta_table(lake / "silver_users")) == Counter(good)
    by_country = {r.country: r.count_users for r in cassandra_admin.execute("SELECT * FROM country_stats")}
    assert by_country == dict(Counter(r["country"] for r in delta_table(lake / "silver_users")))
    gold = {
        r["group_key"]: r["count_users"]
        for r in delta_table(lake / "gold_stats")
        if r["dimension"] == "country"
    }
    assert gold == by_country
    # Bronze: every record once (the whole batch's append, none again by its parts).
    produced = {(p, o) for p in start for o in range(start[p], after_first[p])}
    bronze = Counter((r["partition"], r["offset"]) for r in delta_table(lake / "bronze"))
    assert {k: v for k, v in bronze.items() if k in produced} == dict.fromkeys(produced, 1)
    assert sum(bronze.values()) == len(produced) + 1  # and the later batch's record
    # quality_metrics: the valid users counted once over the batch's parts and the later batch.
    quality = list(cassandra_admin.execute("SELECT valid, quarantined FROM quality_metrics"))
    assert sum(q.valid for q in quality) == len(good) and sum(q.quarantined for q in quality) == 1

    # The quarantine: the bad-email user once (appended by the whole batch's first attempt),
    # the failed record once, with its reason, error and raw bytes.
    quarantine = delta_table(lake / "quarantine")
    assert Counter(r["anomaly_id"] for r in quarantine).most_common(1)[0][1] == 1
    failed = [r for r in quarantine if "processing_failed" in r["reasons"]]
    assert [r["reasons"] for r in quarantine if r not in failed] == [["invalid_email"]]
    assert len(failed) == 1
    (record,) = failed
    poison_at = next((p, o) for p, o in produced if bronze_value(lake, p, o) == poison_value)
    assert (record["partition"], record["offset"]) == poison_at
    assert record["raw_value"] == poison_value and record["batch_id"] == poison["meta"]["batch_id"]
    assert record["anomaly_id"] == f"{s.kafka.topic}-{poison_at[0]}-{poison_at[1]}-processing_failed-lake"
    assert record["error"].startswith("lake: ") and "WRITE_ANCIENT_DATETIME" in record["error"]
    document = mongo_db["anomalies"].find_one({"_id": record["anomaly_id"]})
    assert document is not None
    assert (document["reasons"], document["query"], document["batch_id"]) == (
        ["processing_failed"],
        "lake",
        poison["meta"]["batch_id"],
    )
    assert "WRITE_ANCIENT_DATETIME" in document["error"] and document["raw_bytes"] == len(poison_value)
    assert mongo_db["anomalies"].count_documents({}) == 2  # and the bad-email user's

    # The alert, through the alert file every channel's dispatch also records.
    history = json.loads((tmp_path / "alerts.json").read_text())["history"]
    alerts = [a for a in history if a["rule"] == "processing_failed:lake"]
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical"
    assert f"{poison_at[0]}@{poison_at[1]}" in alerts[0]["summary"]
    assert "(an error of its data, not retried)" in alerts[0]["summary"]
    # The split batch's ledger is gone once it went through (a later batch's may be under way).
    ledger = tmp_path / "checkpoints" / "lake.failing.json"
    assert not ledger.exists() or json.loads(ledger.read_text())["batch_id"] != 0


def bronze_value(lake: Path, partition: int, offset: int) -> bytes | None:
    for r in delta_table(lake / "bronze"):
        if (r["partition"], r["offset"]) == (partition, offset):
            return bytes(r["value"])
    return None
