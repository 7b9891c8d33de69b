"""The streaming job end to end on the real stack: Kafka -> job -> Delta, MongoDB, Cassandra.

Expected results are computed here from the fixture JSON with plain Python, not with the
job's code, and compared with what the stores really hold, row for row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from cassandra.cluster import Session
from kafka import KafkaProducer

from common.settings import Settings
from tests.e2e.conftest import JobRunner, end_offsets, offsets_json, produce, wait_for
from tests.unit.bronze_rows import encode, envelope, load_users

FETCHED = "2026-11-27 23:40:00.123000"


def email_pseudo(s: Settings, email: str) -> str:
    digest = hmac.new(s.pseudonym.key, email.strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"v{s.pseudonym.key_version}:{digest}"


def expected_country_stats(users: list[dict[str, Any]]) -> dict[str, tuple[int, int, float, int, int]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for u in users:
        groups.setdefault(u["location"]["country"], []).append(u)
    out = {}
    for country, members in groups.items():
        ages = [m["dob"]["age"] for m in members]
        out[country] = (
            len(members),
            sum(ages),
            sum(ages) / len(members),
            sum(m["gender"] == "male" for m in members),
            sum(m["gender"] == "female" for m in members),
        )
    return out


def cassandra_country_stats(session: Session) -> dict[str, tuple[int, int, float, int, int]]:
    rows = session.execute(
        "SELECT country, count_users, sum_age, avg_age, male_count, female_count FROM country_stats"
    )
    return {r.country: (r.count_users, r.sum_age, r.avg_age, r.male_count, r.female_count) for r in rows}


def test_pipeline_delivers_every_valid_user_once_and_quarantines_the_rest(
    clean_stores: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    s = clean_stores
    start = end_offsets(s)
    valid_users: list[dict[str, Any]] = []
    messages: list[tuple[str | None, bytes]] = []
    for seq, name in enumerate(["nat-US.json", "nat-GB.json", "nat-IR.json", "nat-CA.json", "mixed-10.json"]):
        info, users = load_users(fixtures_dir, name)
        batch = envelope(users, batch_id=str(uuid.uuid4()), seq=seq, info=info, source="api")
        messages.append((batch["meta"]["batch_id"], encode(batch)))
        valid_users += users
    # The producer re-sends a batch (same identity, same bytes): it must count once.
    messages.append(messages[0])
    # One response with two bad users among good ones.
    info, fr = load_users(fixtures_dir, "nat-FR.json")
    del fr[0]["login"]["uuid"]
    fr[1]["email"] = "not-an-email"
    bad_batch = envelope(fr, batch_id=str(uuid.uuid4()), seq=9, info=info, source="api")
    messages.append((bad_batch["meta"]["batch_id"], encode(bad_batch)))
    valid_users += fr[2:]
    # Hostile and malformed records.
    messages.append((None, b"this is not json \xff"))
    empty = envelope([], batch_id=str(uuid.uuid4()), seq=10)
    messages.append((empty["meta"]["batch_id"], encode(empty)))
    produce(s, messages)

    job = JobRunner(tmp_path, offsets_json(s, start))
    log = job.run_available_now()
    assert "batch 0:" in log

    by_id = {u["login"]["uuid"]: u for u in valid_users}
    # MongoDB: one document per valid user, with pseudonymised contacts.
    docs = {d["_id"]: d for d in mongo_db["randomUserCollection"].find({})}
    assert set(docs) == set(by_id)
    for uid, u in by_id.items():
        d = docs[uid]
        got = (
            d["full_name"],
            d["country"],
            d["age"],
            d["nat"],
            d["city"],
            d["email_pseudo"],
            d["email_domain"],
        )
        want = (
            f"{u['name']['first']} {u['name']['last']}",
            u["location"]["country"],
            u["dob"]["age"],
            u["nat"],
            u["location"]["city"],
            email_pseudo(s, u["email"]),
            u["email"].split("@")[1],
        )
        assert got == want
    # Cassandra: the user table and the latest-users table hold exactly these users, once.
    rows = list(
        cassandra_admin.execute(
            "SELECT user_id, ingestion_time, full_name, age, country FROM random_user_table"
        )
    )
    assert sorted((r.user_id, str(r.ingestion_time), r.full_name, r.age, r.country) for r in rows) == sorted(
        (uid, FETCHED, f"{u['name']['first']} {u['name']['last']}", u["dob"]["age"], u["location"]["country"])
        for uid, u in by_id.items()
    )
    latest = list(cassandra_admin.execute("SELECT user_id FROM latest_users WHERE day = '2026-11-27'"))
    assert sorted(r.user_id for r in latest) == sorted(by_id)
    assert cassandra_country_stats(cassandra_admin) == expected_country_stats(valid_users)
    # The quarantine stream: every bad record with its reason, good data still flowed.
    anomalies = sorted(tuple(d["reasons"]) for d in mongo_db["anomalies"].find({}))
    assert anomalies == sorted(
        [
            ("unparseable_json", "invalid_encoding"),  # b"this is not json \xff"
            ("missing_results",),
            ("missing_uuid",),
            ("invalid_email",),
        ]
    )
    quality = list(
        cassandra_admin.execute("SELECT records_in, valid, quarantined, reasons FROM quality_metrics")
    )
    assert sum(q.records_in for q in quality) == len(messages)
    assert sum(q.quarantined for q in quality) == 4
    # Nothing raw leaves bronze: no email or phone in clear in any document or row.
    raw = (
        {u["email"] for u in valid_users}
        | {u["phone"] for u in valid_users}
        | {u["cell"] for u in valid_users}
    )
    dumped = json.dumps(list(mongo_db["randomUserCollection"].find({})), default=str)
    dumped += json.dumps(list(mongo_db["anomalies"].find({})), default=str)
    dumped += json.dumps(
        [list(r) for r in cassandra_admin.execute("SELECT * FROM random_user_table")], default=str
    )
    assert not [value for value in raw if value in dumped]

    # A crash after every sink but before Spark recorded the batch as done: on restart the
    # same micro-batch runs again, in both queries. Mongo's insert then meets its own documents
    # and skips them; Delta skips its versions; Cassandra upserts the same rows (processed_time
    # included). Every store must be exactly as before.
    def stores() -> tuple[Any, ...]:
        return (
            sorted(mongo_db["randomUserCollection"].find({}), key=lambda d: d["_id"]),
            # processed_time is when Spark planned the batch (its checkpoint): the same on a rerun
            sorted(mongo_db["anomalies"].find({}), key=lambda d: d["_id"]),
            sorted(tuple(r) for r in cassandra_admin.execute("SELECT * FROM random_user_table")),
            sorted(tuple(r) for r in cassandra_admin.execute("SELECT * FROM latest_users")),
            cassandra_country_stats(cassandra_admin),
        )

    before = stores()
    last = {}
    for query in ("serving", "lake"):
        commits = sorted(
            (job.workdir / "checkpoints" / query / "commits").glob("[0-9]*"), key=lambda p: int(p.name)
        )
        commits[-1].unlink()
        (commits[-1].parent / f".{commits[-1].name}.crc").unlink(missing_ok=True)  # Hadoop's checksum
        last[query] = commits[-1].name
    rerun = job.run_available_now()
    assert f"serving batch {last['serving']}:" in rerun
    assert f"lake batch {last['lake']}:" in rerun
    assert "some documents are there already: inserting the others" in rerun
    assert stores() == before


def _fresh_batch(fixtures_dir: Path, seq: int, rng: random.Random) -> tuple[str, bytes, list[dict[str, Any]]]:
    """An API-shaped batch of new people (fixture users with fresh uuids)."""
    names = sorted(p.name for p in fixtures_dir.glob("nat-*.json"))
    info, users = load_users(fixtures_dir, rng.choice(names))
    for u in users:
        u["login"]["uuid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    batch = envelope(users, batch_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), seq=seq, info=info)
    return batch["meta"]["batch_id"], encode(batch), users


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    clean_stores: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    s = clean_stores
    kill_rng = random.Random(20261127)
    start = end_offsets(s)
    stop = threading.Event()
    sent: list[dict[str, Any]] = []

    def feed() -> None:
        # The producer keeps going while the job dies and restarts; one batch in five is sent twice.
        rng = random.Random(42)
        producer = KafkaProducer(**s.kafka.client_config(s.kafka.producer), acks="all")
        try:
            seq = 0
            while not stop.is_set() and seq < 2000:
                key, value, users = _fresh_batch(fixtures_dir, seq, rng)
                for _ in range(2 if rng.random() < 0.2 else 1):
                    producer.send(s.kafka.topic, key=key.encode(), value=value)
                producer.flush(timeout=60)
                sent.extend(users)
                seq += 1
                stop.wait(1.0)
        finally:
            producer.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    job = JobRunner(tmp_path, offsets_json(s, start))
    proc = None
    try:
        for run in range(3):
            proc = job.start()
            # Wait until this run has finished a batch, then kill it at a random moment.
            wait_for(
                lambda p=proc: "INFO jobs.pipeline: lake batch " in job.log_text() or p.poll() is not None,
                600,
                f"a batch of job run {run + 1}",
            )
            assert proc.poll() is None, job.log_text()[-3000:]
            time.sleep(kill_rng.uniform(0.5, 8.0))
            job.kill(proc)
            proc = None
    finally:
        if proc is not None:
            job.kill(proc)
        stop.set()
        feeder.join(timeout=120)
    assert not feeder.is_alive()
    job.run_available_now()

    expected = [u["login"]["uuid"] for u in sent]
    assert len(expected) == len(set(expected)) > 0
    ids = [d["_id"] for d in mongo_db["randomUserCollection"].find({}, {"_id": 1})]
    assert sorted(ids) == sorted(expected)
    rows = [r.user_id for r in cassandra_admin.execute("SELECT user_id FROM random_user_table")]
    assert Counter(rows) == Counter(expected)
    latest = [
        r.user_id
        for r in cassandra_admin.execute("SELECT user_id FROM latest_users WHERE day = '2026-11-27'")
    ]
    assert Counter(latest) == Counter(expected)
    assert cassandra_country_stats(cassandra_admin) == expected_country_stats(sent)
