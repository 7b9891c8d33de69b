"""Replay from bronze on the real stack: wipe MongoDB and Cassandra, replay, get the same stores.

Two Spark starts: the live job once (available-now), then the replay in small chunks. The
stores are a namespace of this module alone (tests/e2e/private_namespace.py), so another
e2e test emptying the shared test namespace meanwhile cannot disturb the comparison.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

from common.settings import Settings
from tests.e2e.conftest import ROOT, JobRunner, end_offsets, offsets_json, produce
from tests.e2e.private_namespace import Namespace, create_empty, wipe
from tests.unit.bronze_rows import encode, envelope, load_users

# Columns that legitimately differ between two runs: when the row was written.
WRITE_TIME_COLUMNS = {"processed_time", "last_update"}
SNAPSHOT_TABLES = ("random_user_table", "latest_users", "country_stats", "gender_stats", "age_band_stats")


def snapshot(cassandra: Session, mongo_db: Any, ns: Namespace) -> dict[str, list[str]]:
    """Every row and document of the serving stores, minus write times, in a stable order."""
    out: dict[str, list[str]] = {}
    for table in SNAPSHOT_TABLES:
        rows = cassandra.execute(f"SELECT * FROM {ns.keyspace}.{table}")
        out[table] = sorted(
            repr(sorted((k, v) for k, v in row._asdict().items() if k not in WRITE_TIME_COLUMNS))
            for row in rows
        )
    for collection in ("randomUserCollection", "anomalies"):
        docs = mongo_db.client[ns.database][collection].find({})
        out[collection] = sorted(
            repr(sorted((k, v) for k, v in doc.items() if k not in WRITE_TIME_COLUMNS)) for doc in docs
        )
    return out


def quality_totals(cassandra: Session, ns: Namespace) -> tuple[int, int, int, int, Counter[str]]:
    """quality_metrics summed over batches (the replay's chunks are not the live batches)."""
    rows = list(
        cassandra.execute(
            f"SELECT records_in, users_in, valid, quarantined, reasons FROM {ns.keyspace}.quality_metrics"
        )
    )
    reasons: Counter[str] = Counter()
    for r in rows:
        reasons.update(dict(r.reasons or {}))
    return (
        sum(r.records_in for r in rows),
        sum(r.users_in for r in rows),
        sum(r.valid for r in rows),
        sum(r.quarantined for r in rows),
        reasons,
    )


def test_replay_after_wiping_the_stores_rebuilds_the_same_rows_and_statistics(
    stack: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    s = stack
    ns = create_empty(s, cassandra_admin, mongo_db, "replay")
    s = ns.settings  # our own topic
    start = end_offsets(s)
    messages: list[tuple[str | None, bytes]] = []
    for seq, name in enumerate(["nat-US.json", "nat-DE.json", "nat-BR.json", "mixed-10.json"]):
        info, users = load_users(fixtures_dir, name)
        batch = envelope(users, batch_id=str(uuid.uuid4()), seq=seq, info=info, source="api")
        messages.append((batch["meta"]["batch_id"], encode(batch)))
    messages.append(messages[1])  # re-sent by the producer: counted once, live and replayed
    info, fr = load_users(fixtures_dir, "nat-FR.json")
    fr[0]["email"] = "not-an-email"
    bad = envelope(fr, batch_id=str(uuid.uuid4()), seq=7, info=info, source="api")
    messages.append((bad["meta"]["batch_id"], encode(bad)))
    messages.append((None, b"{not json"))
    produce(s, messages)

    job = JobRunner(tmp_path, offsets_json(s, start), extra_env=ns.env())
    job.run_available_now()
    live = snapshot(cassandra_admin, mongo_db, ns)
    live_quality = quality_totals(cassandra_admin, ns)
    # Our users and anomalies arrived (the shared test topic may carry other tests' records too).
    db = mongo_db.client[ns.database]
    ours = {u["login"]["uuid"] for _, value in messages[:4] for u in json.loads(value)["results"]}
    ours |= {u["login"]["uuid"] for u in fr[1:]}
    assert len(ours) == 4 * 10 + 9
    assert ours <= {d["_id"] for d in db["randomUserCollection"].find({}, {"_id": 1})}
    anomalies = [tuple(d["reasons"]) for d in db["anomalies"].find({"batch_id": bad["meta"]["batch_id"]})]
    assert anomalies == [("invalid_email",)]
    assert db["anomalies"].count_documents({"reasons": "unparseable_json"}) >= 1
    assert all(live[t] for t in SNAPSHOT_TABLES)

    wipe(cassandra_admin, mongo_db, ns)  # the disaster
    assert all(not rows for rows in snapshot(cassandra_admin, mongo_db, ns).values())

    replay_lake = tmp_path / "replay-lake"
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "spark-submit.sh"),
            str(ROOT / "jobs" / "replay_bronze.py"),
            "--batch-records",
            "3",
            "--replay-lake",
            str(replay_lake),
        ],
        cwd=ROOT,
        env=job.env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    # Progress: one line per chunk of 3 records (7 of ours, maybe a few of other tests).
    chunks = [tuple(map(int, c)) for c in re.findall(r"replay chunk (\d+)/(\d+): records=(\d+)", output)]
    total, n = live_quality[0], len(chunks)
    assert total >= 7 and n == (total + 2) // 3, output[-4000:]
    assert chunks == [(i + 1, n, 3) for i in range(n - 1)] + [(n, n, total - 3 * (n - 1))]

    assert snapshot(cassandra_admin, mongo_db, ns) == live
    assert quality_totals(cassandra_admin, ns) == live_quality
    # The live lake's bronze was read, never appended to; the replay has its own silver.
    assert (replay_lake / "silver_users").is_dir() and not (replay_lake / "bronze").exists()
