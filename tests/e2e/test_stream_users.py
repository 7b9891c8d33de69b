"""The streaming job end to end on the real stack: Kafka -> job -> Delta, MongoDB, Cassandra.

Expected results are computed here from the fixture JSON with plain Python, not with the
job's code, and compared with what the stores really hold, row for row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import pyarrow.parquet as pq
from cassandra.cluster import Session
from kafka import KafkaProducer

from common.settings import Settings
from tests.e2e.conftest import JobRunner, end_offsets, job_log, offsets_json, produce, wait_for
from tests.e2e.private_namespace import create_empty
from tests.expectations import age_band
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


# --- SIGKILL at any moment, in either query -----------------------------------------------

# The job's GOLD_FULL_RECOMPUTE_EVERY in the SIGKILL test: gold is recomputed from silver in
# batches 0, 4, 8 ... and incremental in the others, and the reruns aimed at are incremental.
EVERY = 4
QUERIES = ("serving", "lake")
GOLD_TABLE = "gold_stats"  # every statistic, one Delta table (one commit per lake batch)
# The fields whose share of present values quality_metrics reports (completeness).
KEY_FIELDS = ("user_id", "email", "country", "age", "nat")
T = TypeVar("T")


@dataclass(frozen=True)
class Sent:
    """One Kafka record the test produced: where Kafka put it and what it holds."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    parsed: bool  # False: not JSON at all
    users: tuple[dict[str, Any], ...]  # in message order
    malformed: frozenset[int]  # positions of the users whose uuid is malformed


def _fresh_batch(
    fixtures_dir: Path, seq: int, rng: random.Random, malformed: bool
) -> tuple[str, bytes, list[dict[str, Any]], frozenset[int]]:
    """An API-shaped batch of new people (fixture users with fresh uuids); with `malformed`,
    one of them has an upper-case uuid, which the quality rules quarantine (malformed_uuid)."""
    names = sorted(p.name for p in fixtures_dir.glob("nat-*.json"))
    info, users = load_users(fixtures_dir, rng.choice(names))
    for u in users:
        u["login"]["uuid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    bad = frozenset({rng.randrange(len(users))}) if malformed else frozenset()
    for position in bad:
        users[position]["login"]["uuid"] = users[position]["login"]["uuid"].upper()
    batch = envelope(users, batch_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), seq=seq, info=info)
    return batch["meta"]["batch_id"], encode(batch), users, bad


class Feed:
    """The producer of the SIGKILL test; every record is kept with its partition, offset and time."""

    def __init__(self, s: Settings, fixtures_dir: Path) -> None:
        self.topic = s.kafka.topic
        self.fixtures_dir = fixtures_dir
        self.rng = random.Random(42)
        self.producer = KafkaProducer(**s.kafka.client_config(s.kafka.producer), acks="all")
        self.sent: list[Sent] = []
        self.seq = 0

    def _send(
        self,
        key: bytes | None,
        value: bytes,
        users: list[dict[str, Any]],
        malformed: frozenset[int],
        *,
        parsed: bool = True,
    ) -> None:
        meta = self.producer.send(self.topic, key=key, value=value).get(timeout=60)
        self.sent.append(
            Sent(meta.partition, meta.offset, meta.timestamp, key, value, parsed, tuple(users), malformed)
        )

    def batch(self, *, clean: bool = False) -> None:
        """One API response of new people. Unless `clean`: one in four has a user with a malformed
        uuid, one in five is sent twice (same bytes: the producer re-sending), one in eight is
        followed by a record that is not JSON."""
        rng = self.rng
        key, value, users, bad = _fresh_batch(
            self.fixtures_dir, self.seq, rng, not clean and rng.random() < 0.25
        )
        for _ in range(2 if not clean and rng.random() < 0.2 else 1):
            self._send(key.encode(), value, users, bad)
        if not clean and rng.random() < 0.125:
            self._send(None, f"not json, seq {self.seq}".encode(), [], frozenset(), parsed=False)
        self.seq += 1

    def close(self) -> None:
        self.producer.close()

    def valid_users(self) -> dict[str, dict[str, Any]]:
        """Every valid person sent, by uuid (a re-sent one once)."""
        return {
            u["login"]["uuid"]: u for r in self.sent for i, u in enumerate(r.users) if i not in r.malformed
        }

    def anomalies(self) -> dict[str, list[str]]:
        """The quarantine's expected content: anomaly id (topic-partition-offset-position) -> reasons."""
        out = {}
        for r in self.sent:
            where = f"{self.topic}-{r.partition}-{r.offset}"
            if not r.parsed:
                out[f"{where}-message"] = ["unparseable_json"]
            out.update({f"{where}-{position}": ["malformed_uuid"] for position in r.malformed})
        return out


def expected_gender_stats(users: list[dict[str, Any]]) -> dict[str, tuple[int, int, float]]:
    ages: dict[str, list[int]] = {}
    for u in users:
        ages.setdefault(u["gender"], []).append(u["dob"]["age"])
    return {g: (len(a), sum(a), sum(a) / len(a)) for g, a in ages.items()}


def expected_age_band_stats(users: list[dict[str, Any]]) -> dict[str, tuple[int]]:
    return {band: (n,) for band, n in Counter(age_band(u["dob"]["age"]) for u in users).items()}


def cassandra_table(
    session: Session, keyspace: str, table: str, key: str, *columns: str
) -> dict[Any, tuple[Any, ...]]:
    rows = session.execute(f"SELECT {key}, {', '.join(columns)} FROM {keyspace}.{table}")
    return {row[0]: tuple(row[1:]) for row in rows}


def delta_rows(table: Path, *columns: str) -> list[dict[str, Any]]:
    """The rows of a Delta table's current version, read with pyarrow: the data files its log
    adds and does not remove (every JSON commit is kept for DELTA_LOG_RETENTION, 30 days)."""
    log = table / "_delta_log"
    commits = sorted(p for p in log.iterdir() if re.fullmatch(r"\d{20}\.json", p.name))
    assert [int(p.stem) for p in commits] == list(range(len(commits))), f"a commit is missing in {log}"
    files: dict[str, None] = {}
    for commit in commits:
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "metaData" in action:  # what this reader does not handle must not be there
                assert not action["metaData"]["partitionColumns"]
                assert "delta.columnMapping.mode" not in action["metaData"].get("configuration", {})
            if "add" in action:
                assert not action["add"].get("deletionVector")
                files[unquote(action["add"]["path"])] = None
            elif "remove" in action:
                files.pop(unquote(action["remove"]["path"]), None)
    return [row for path in files for row in pq.read_table(table / path, columns=list(columns)).to_pylist()]


def checkpoint_head(job: JobRunner, query: str) -> tuple[int, int]:
    """(N of the newest offsets/N, N of the newest commits/N) of a query's checkpoint; -1: none.

    Spark writes offsets/N before batch N runs and commits/N after it: offsets ahead of
    commits is a batch under way, which a restart runs again.
    """
    folder = job.workdir / "checkpoints" / query

    def newest(log: str) -> int:
        return max((int(p.name) for p in (folder / log).glob("[0-9]*") if p.name.isdigit()), default=-1)

    return newest("offsets"), newest("commits")


def under_way(job: JobRunner, query: str) -> int | None:
    offsets, commits = checkpoint_head(job, query)
    return offsets if offsets > commits else None


def lake_batches(
    job: JobRunner, topic: str, start: dict[int, int]
) -> dict[int, tuple[dict[int, int], dict[int, int]]]:
    """Each lake batch's Kafka range per partition, [from, to), from the checkpoint's offsets log."""
    folder = job.workdir / "checkpoints" / "lake" / "offsets"
    files = sorted((int(p.name), p) for p in folder.glob("[0-9]*") if p.name.isdigit())
    assert [n for n, _ in files] == list(range(len(files))), "Spark purged offsets files: fewer batches"
    ranges = {}
    begin = start
    for n, path in files:
        end = {int(p): o for p, o in json.loads(path.read_text().splitlines()[2])[topic].items()}
        ranges[n] = (begin, end)
        begin = end
    return ranges


def lake_batch_of(job: JobRunner, topic: str, record: Sent) -> int | None:
    """The lake batch that reads `record`, once Spark planned it."""
    folder = job.workdir / "checkpoints" / "lake" / "offsets"
    found = None
    for n in sorted((int(p.name) for p in folder.glob("[0-9]*") if p.name.isdigit()), reverse=True):
        end = json.loads((folder / str(n)).read_text().splitlines()[2])[topic]
        if end[str(record.partition)] <= record.offset:
            break
        found = n
    return found


def gold_batch(job: JobRunner, table: str) -> int:
    """The lake batch id of a gold table's newest commit (its Delta txn version); -1: none."""
    log = job.workdir / "lake" / table / "_delta_log"
    commits = sorted(p for p in log.glob("*.json") if re.fullmatch(r"\d{20}\.json", p.name))
    for line in commits[-1].read_text().splitlines() if commits else []:
        if "txn" in (action := json.loads(line)):
            return int(action["txn"]["version"])
    return -1


def expected_quality_metrics(
    feed: Feed, ranges: dict[int, tuple[dict[int, int], dict[int, int]]]
) -> dict[int, tuple[Any, ...]]:
    """quality_metrics recomputed for each lake batch that read records, from what was sent."""
    seen: set[str] = set()
    out = {}
    for n, (begin, end) in sorted(ranges.items()):
        records = [r for r in feed.sent if begin[r.partition] <= r.offset < end[r.partition]]
        if not records:
            continue
        users_in = sum(len(r.users) for r in records)
        malformed = sum(len(r.malformed) for r in records)
        unparseable = sum(not r.parsed for r in records)
        people = {u["login"]["uuid"] for r in records for i, u in enumerate(r.users) if i not in r.malformed}
        batch_time = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=max(r.timestamp_ms for r in records))
        out[n] = (
            batch_time.date().isoformat(),  # the UTC day of the batch's newest Kafka timestamp
            batch_time,
            len(records),
            users_in,
            users_in - malformed,
            malformed + unparseable,
            {k: v for k, v in (("unparseable_json", unparseable), ("malformed_uuid", malformed)) if v},
            dict.fromkeys(KEY_FIELDS, 1.0) if users_in else {},
            0,  # a response re-sent has the same batch id and positions: not a duplicate within it
            len(people & seen),  # valid people silver had before this batch
        )
        seen |= people
    return out


def gold_or_commit(job: JobRunner, n: int) -> str | None:
    """What lake batch n did first: commit ("committed") or overwrite gold ("gold")."""
    if checkpoint_head(job, "lake")[1] >= n:
        return "committed"
    return "gold" if gold_batch(job, GOLD_TABLE) == n else None


@dataclass
class Kill:
    """One SIGKILL: which run it ended, what it aimed at, and what it cut (read after it)."""

    run: int
    aim: str
    cut: dict[str, int]  # query -> its batch under way (offsets/N without commits/N)
    gold_done: bool = False  # gold had committed the cut lake batch's overwrite


def poll(proc: subprocess.Popen[bytes], job: JobRunner, probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + 300
    while (value := probe()) is None:
        assert proc.poll() is None, f"job ended while waiting for {what}:\n{job.log_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    stack: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL the job while batches (some re-sent, some with records to quarantine) keep coming:
    once in a serving batch, once at a random moment of a lake batch, once in a lake batch
    after its gold overwrite committed (the rerun then adds the batch's users to a gold that
    already has them: it must not). Every cut batch is rerun by the next start, then every
    store is compared with the input and the statistics with a recomputation from it.

    A namespace of its own: a whole-store comparison must not meet another test's truncate.
    """
    ns = create_empty(stack, cassandra_admin, mongo_db, "sigkill")
    s, ks, db = ns.settings, ns.keyspace, mongo_db.client[ns.database]
    topic = s.kafka.topic
    kill_rng = random.Random(20261127)
    start = end_offsets(s)
    feed = Feed(s, fixtures_dir)
    stop = threading.Event()

    def produce_steadily() -> None:
        # The producer keeps going while the job dies and restarts.
        while not stop.is_set() and feed.seq < 2000:
            feed.batch()
            stop.wait(1.0)

    feeder = threading.Thread(target=produce_steadily, daemon=True)
    feeder.start()
    job = JobRunner(tmp_path, offsets_json(s, start), {**ns.env(), "GOLD_FULL_RECOMPUTE_EVERY": str(EVERY)})
    kills: list[Kill] = []
    proc = None

    def aim_serving(proc: subprocess.Popen[bytes]) -> None:
        poll(proc, job, lambda: under_way(job, "serving"), "a serving batch under way")

    def aim_lake(proc: subprocess.Popen[bytes]) -> None:
        # A random moment of a lake batch whose gold is incremental; the next one if it ended first.
        while True:
            n = poll(
                proc, job, lambda: b if (b := under_way(job, "lake")) and b % EVERY else None, "a lake batch"
            )
            moment = time.monotonic() + kill_rng.uniform(0.0, 4.0)
            while time.monotonic() < moment and checkpoint_head(job, "lake")[1] < n:
                time.sleep(0.02)
            if checkpoint_head(job, "lake")[1] < n:
                return

    def aim_lake_after_gold(proc: subprocess.Popen[bytes]) -> None:
        # The last records, alone in a lake batch: kill it once its gold overwrite is
        # committed and before Spark commits the batch. Its rerun is then the last batch.
        stop.set()
        feeder.join(timeout=120)
        assert not feeder.is_alive()
        for _ in range(6):
            feed.batch(clean=True)
            record = feed.sent[-1]
            n = poll(
                proc, job, partial(lake_batch_of, job, topic, record), "the lake batch of the last record"
            )
            if n % EVERY and poll(proc, job, partial(gold_or_commit, job, n), f"lake batch {n}") == "gold":
                return
        raise AssertionError("no lake batch could be cut between its gold overwrite and its commit")

    aims: dict[str, Callable[[subprocess.Popen[bytes]], None]] = {
        "serving batch": aim_serving,
        "lake batch": aim_lake,
        "lake batch after gold": aim_lake_after_gold,
    }
    try:
        for aim, kill_at in aims.items():
            for _attempt in range(3):  # the batch may end between the last look and the kill
                proc = job.start()
                run = job.runs
                # A lake batch done, and the reruns of what the last kill cut (the first batches).
                done = {"lake", *(kills[-1].cut if kills else {})}
                wait_for(
                    lambda p=proc, r=run, d=done: (
                        p.poll() is not None
                        or all(f"INFO jobs.pipeline: {q} batch " in job_log(job, r) for q in d)
                    ),
                    600,
                    f"a batch of {sorted(done)} in job run {run}",
                )
                assert proc.poll() is None, job.log_text()[-3000:]
                kill_at(proc)
                job.kill(proc)
                proc = None
                cut = {q: n for q in QUERIES if (n := under_way(job, q)) is not None}
                kill = Kill(
                    run,
                    aim,
                    cut,
                    "lake" in cut and gold_batch(job, GOLD_TABLE) == cut["lake"],
                )
                kills.append(kill)
                landed = {
                    "serving batch": "serving" in cut,
                    "lake batch": cut.get("lake", 0) % EVERY != 0,
                    "lake batch after gold": cut.get("lake", 0) % EVERY != 0 and kill.gold_done,
                }[aim]
                if landed:
                    break
            else:
                raise AssertionError(f"no kill landed in a {aim}: {kills}")
    finally:
        if proc is not None:
            job.kill(proc)
        stop.set()
        feeder.join(timeout=120)
        feed.close()
    assert not feeder.is_alive()
    job.run_available_now()

    # Each batch a kill cut ran again, first thing, in the next run (the last: available-now).
    for kill in kills:
        log = job_log(job, kill.run + 1)
        for q, n in kill.cut.items():
            rerun = re.search(rf"INFO jobs\.pipeline: {q} batch (\d+):", log)
            assert rerun is not None and int(rerun.group(1)) == n, (kill, rerun)

    valid = feed.valid_users()
    users = list(valid.values())
    expected = sorted(valid)
    assert expected
    # Serving stores: each valid user once.
    assert sorted(d["_id"] for d in db["randomUserCollection"].find({}, {"_id": 1})) == expected
    rows = [r.user_id for r in cassandra_admin.execute(f"SELECT user_id FROM {ks}.random_user_table")]
    assert sorted(rows) == expected
    latest = cassandra_admin.execute(f"SELECT user_id FROM {ks}.latest_users WHERE day = '2026-11-27'")
    assert sorted(r.user_id for r in latest) == expected
    # The quarantine: every bad record once, with its reasons, in Mongo and in Delta.
    anomalies = feed.anomalies()
    assert {d["_id"]: d["reasons"] for d in db["anomalies"].find({}, {"reasons": 1})} == anomalies
    quarantine = delta_rows(job.workdir / "lake" / "quarantine", "anomaly_id", "reasons")
    assert sorted((q["anomaly_id"], q["reasons"]) for q in quarantine) == sorted(anomalies.items())
    # Bronze: every Kafka record exactly once, as sent.
    bronze = delta_rows(job.workdir / "lake" / "bronze", "topic", "partition", "offset", "key", "value")
    assert len(bronze) == len(feed.sent)
    assert {(b["topic"], b["partition"], b["offset"]): (b["key"], b["value"]) for b in bronze} == {
        (topic, r.partition, r.offset): (r.key, r.value) for r in feed.sent
    }
    # Silver: each valid person once.
    silver = delta_rows(job.workdir / "lake" / "silver_users", "user_id", "country", "gender", "age")
    assert sorted((u["user_id"], u["country"], u["gender"], u["age"]) for u in silver) == sorted(
        (uid, u["location"]["country"], u["gender"], u["dob"]["age"]) for uid, u in valid.items()
    )
    # quality_metrics: one row per lake batch that read records, each equal to its recomputation.
    want_quality = expected_quality_metrics(feed, lake_batches(job, topic, start))
    assert sum(q[2] for q in want_quality.values()) == len(feed.sent)
    got_quality = {
        q.batch_id: (
            str(q.day),
            q.batch_time,
            q.records_in,
            q.users_in,
            q.valid,
            q.quarantined,
            {k: v for k, v in (q.reasons or {}).items() if v},
            dict(q.completeness or {}),
            q.duplicates_in_batch,
            q.duplicates_across,
        )
        for q in cassandra_admin.execute(f"SELECT * FROM {ks}.quality_metrics")
    }
    assert got_quality == want_quality
    # Statistics: gold in Delta (every dimension), then its Cassandra projections, equal a
    # recomputation from the input (checked last, so a failure here says all the rest holds).
    country, gender, bands = (
        expected_country_stats(users),
        expected_gender_stats(users),
        expected_age_band_stats(users),
    )
    country_columns = ("count_users", "sum_age", "avg_age", "male_count", "female_count")
    lake = job.workdir / "lake"
    statistics = (
        ("country_stats", "country", country_columns, country),
        ("gender_stats", "gender", ("count_users", "sum_age", "avg_age"), gender),
        ("age_band_stats", "age_band", ("count_users",), bands),
    )
    gold = delta_rows(lake / GOLD_TABLE, "dimension", "group_key", *country_columns)
    assert {g["dimension"] for g in gold} == {key for _, key, _, _ in statistics}
    for _table, key, columns, want in statistics:
        got = {g["group_key"]: tuple(g[c] for c in columns) for g in gold if g["dimension"] == key}
        assert got == want, f"gold {key}, {kills}"
    for table, key, columns, want in statistics:
        assert cassandra_table(cassandra_admin, ks, table, key, *columns) == want, f"{table}, {kills}"
