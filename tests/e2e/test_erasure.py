"""Governance end to end on the real stack: erasure, no raw contacts in the stores, redaction.

One real job run (its private lake) ingests four people of a country made up for this
test, so the shared test namespace can be checked for them alone. While the job runs, its
Spark UI and log are read for secrets. Then `jobs/erase.py` erases one person, and every
store, every file of the lake (data files of every version time travel could reach, and
the transaction log) and the aggregates are checked.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cassandra.cluster import Session

from common.settings import Settings, eraser_account
from jobs.core import erasure
from tests.e2e.conftest import ROOT, JobRunner, end_offsets, offsets_json, produce, wait_for
from tests.integration.test_erasure_lake import files_naming
from tests.unit.bronze_rows import encode, envelope, load_users

EMAIL = re.compile(r"[^\s@\"']+@[^\s@\"']+\.[A-Za-z]{2,}")
UI_PORT = 4177  # this test's own Spark UI port (other e2e jobs may hold JobRunner's 4140)


def _people(fixtures_dir: Path, country: str, tag: str) -> list[dict[str, Any]]:
    _, users = load_users(fixtures_dir, "nat-FR.json")
    people = []
    for i, user in enumerate(users[:4]):
        person = copy.deepcopy(user)
        person["login"]["uuid"] = str(uuid.uuid4())
        person["email"] = f"{person['name']['first'].lower()}.{tag}{i}@example.com"
        person["location"]["country"] = country
        people.append(person)
    return people


class _Runner(JobRunner):
    """JobRunner on this test's own Spark UI port."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "SPARK_UI_PORT": str(UI_PORT)}


def _secrets(s: Settings) -> list[str]:
    eraser = eraser_account(s.env)
    accounts = [s.kafka.admin, s.kafka.producer, s.kafka.job, s.cassandra.admin, s.cassandra.writer]
    accounts += [s.cassandra.reader, s.mongo.admin, s.mongo.writer, s.mongo.reader]
    accounts += [eraser] if eraser else []
    return [a.password.get_secret_value() for a in accounts] + [s.pseudonym.key.hex()]


def _ui_environment() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{UI_PORT}/api/v1/applications", timeout=120) as reply:
        app_id = json.load(reply)[0]["id"]
    url = f"http://127.0.0.1:{UI_PORT}/api/v1/applications/{app_id}/environment"
    with urllib.request.urlopen(url, timeout=120) as reply:
        return str(reply.read().decode())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        JobRunner.kill(proc)


def _delta_cells(table_dir: Path) -> list[str]:
    """Every value of every data file of a Delta table, whatever version references it."""
    cells: list[str] = []
    for path in sorted(table_dir.rglob("*.parquet")):
        if "_delta_log" in path.parts:
            continue
        for row in pq.read_table(path).to_pylist():
            for value in row.values():
                cells.append(value.decode(errors="replace") if isinstance(value, bytes) else str(value))
    return cells


def _stats(session: Session, country: str) -> tuple[int, int, int, int] | None:
    row = session.execute(
        "SELECT count_users, sum_age, male_count, female_count FROM country_stats WHERE country = %s",
        (country,),
    ).one()
    return None if row is None else (row.count_users, row.sum_age, row.male_count, row.female_count)


def _expected_stats(people: list[dict[str, Any]]) -> tuple[int, int, int, int]:
    return (
        len(people),
        sum(p["dob"]["age"] for p in people),
        sum(p["gender"] == "male" for p in people),
        sum(p["gender"] == "female" for p in people),
    )


@pytest.mark.timeout(2400)  # two Spark runs (job, erase): minutes each on a loaded 2-core host
def test_erasure_removes_the_person_everywhere_and_secrets_stay_hidden(
    stack: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    s = stack
    tag = uuid.uuid4().hex[:8]
    country = f"Erasurelandia-{tag}"
    alice, bob, carol, dave = _people(fixtures_dir, country, tag)
    ids = {p["login"]["uuid"] for p in (alice, bob, carol, dave)}
    alice_id = alice["login"]["uuid"]
    bad_alice = copy.deepcopy(alice)
    bad_alice["email"] = "not-an-email"  # quarantined, still names her by uuid
    messages = []
    for seq, users in enumerate([[alice, bob, carol], [alice], [bad_alice, dave]]):
        batch = envelope(users, batch_id=str(uuid.uuid4()), seq=seq, source="api")
        messages.append((batch["meta"]["batch_id"], encode(batch)))
    start = end_offsets(s)
    produce(s, messages)

    # --- the real job, running: its UI and log must not show a secret ---------------------
    job = _Runner(tmp_path, offsets_json(s, start))
    proc = job.start()
    try:
        wait_for(lambda: _stats(cassandra_admin, country) is not None, 420, "the job's first batch")
        wait_for(
            lambda: mongo_db["anomalies"].count_documents({"user_id": alice_id}) == 1,
            120,
            "the anomaly",
        )
        environment = _ui_environment()
    finally:
        _stop(proc)
    assert "spark.cassandra.auth.password" in environment  # the keys are listed ...
    leaked = [secret for secret in _secrets(s) if secret in environment or secret in job.log_text()]
    assert leaked == []  # ... their values are not
    assert not re.search(r"mongodb://[^*\s\"]+:[^*\s\"]+@", environment)

    assert _stats(cassandra_admin, country) == _expected_stats([alice, bob, carol, dave])
    raw = {p[f] for p in (alice, bob, carol, dave) for f in ("email", "phone", "cell")}
    _assert_no_raw_contacts(cassandra_admin, mongo_db, raw)

    # --- erase alice -----------------------------------------------------------------------
    erase = subprocess.run(
        [str(ROOT / "scripts" / "spark-submit.sh"), str(ROOT / "jobs" / "erase.py"), "--user-id", alice_id],
        cwd=ROOT,
        env=job.env(),
        capture_output=True,
        timeout=900,
        check=False,
    )
    erase_log = (erase.stdout + erase.stderr).decode(errors="replace")
    assert erase.returncode == 0, erase_log[-4000:]
    assert not [secret for secret in _secrets(s) if secret in erase_log]

    # Cassandra and MongoDB: alice gone, the others untouched.
    cass_ids = {r.user_id for r in cassandra_admin.execute("SELECT user_id FROM random_user_table")} & ids
    latest_ids = {
        r.user_id
        for r in cassandra_admin.execute("SELECT user_id FROM latest_users WHERE day = '2026-11-27'")
    } & ids
    mongo_ids = {d["_id"] for d in mongo_db["randomUserCollection"].find({"_id": {"$in": sorted(ids)}})}
    assert (cass_ids, latest_ids, mongo_ids) == (ids - {alice_id},) * 3
    assert mongo_db["anomalies"].count_documents({"user_id": alice_id}) == 0
    # The aggregates dropped by exactly her.
    assert _stats(cassandra_admin, country) == _expected_stats([bob, carol, dave])

    # Delta: no data file of bronze, silver or the quarantine mentions her any more, in any
    # version (so time travel cannot bring her back); the others are still in bronze.
    lake = tmp_path / "lake"
    for table in ("bronze", "silver_users", "quarantine"):
        cells = _delta_cells(lake / table)
        assert [c for c in cells if alice_id in c or alice["email"] in c] == [], table
    # Nor any other file of the lake: the commits (a DELETE would record her id as its
    # predicate), checksums and checkpoints.
    assert files_naming(lake, [alice_id, alice["email"]]) == []
    bronze_text = "\n".join(_delta_cells(lake / "bronze"))
    assert all(p["login"]["uuid"] in bronze_text for p in (bob, carol, dave))
    # The ledger knows her only by subject key, first requested, then done.
    ledger = [
        r
        for f in sorted((lake / erasure.LEDGER_TABLE).glob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]
    key = erasure.subject_key(alice_id, s.pseudonym.key)
    assert sorted((r["subject_key"], r["status"]) for r in ledger) == [(key, "done"), (key, "requested")]
    assert alice_id not in json.dumps(ledger, default=str)


def _assert_no_raw_contacts(cassandra_admin: Session, mongo_db: Any, raw: set[str]) -> None:
    """Every Cassandra row and MongoDB document of the test namespace: no email, no raw phone."""
    texts: list[str] = []
    tables = [
        r.table_name
        for r in cassandra_admin.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
            (cassandra_admin.keyspace,),
        )
    ]
    for table in tables:
        texts += [str(v) for row in cassandra_admin.execute(f"SELECT * FROM {table}") for v in row]
    for collection in mongo_db.list_collection_names():
        texts += [json.dumps(doc, default=str) for doc in mongo_db[collection].find({})]
    assert len(texts) > 0
    assert [t for t in texts if EMAIL.search(t)] == []
    assert [t for t in texts if any(value in t for value in raw)] == []
