"""The job's two queries on the real stack: the largest messages the API allows, and each
query surviving the other's crash.

Expected figures come from the stores themselves compared with each other and with what
was produced (counted by Kafka and by the quality metrics), never from the job's code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

from common.settings import Settings
from tests.e2e.conftest import ROOT, JobRunner, end_offsets, offsets_json, produce, wait_for
from tests.unit.bronze_rows import encode, envelope, load_users

USERS_PER_MESSAGE = 5000
MESSAGES = 4


def _producer(s: Settings, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real producer (offline generator) into the test topic, until --max-batches."""
    env = {**os.environ, "KAFKA_TOPIC": s.kafka.topic}
    return subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "producer.py",
            "--source",
            "local",
            "--metrics-port",
            "0",
            "--spool-dir",
            str(workdir / "spool"),
            "--log-level",
            "WARNING",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )


def test_messages_of_5000_users_go_through_at_the_default_heap(
    clean_stores: Settings, cassandra_admin: Session, mongo_db: Any, tmp_path: Path
) -> None:
    """The API's largest response (5,000 users; the producer splits it into ~1 MB records)
    through both queries with the default driver heap (conf/spark-defaults.conf): nothing
    dies, every store holds every valid user once."""
    s = clean_stores
    start = end_offsets(s)
    _producer(
        s, tmp_path, "--results", str(USERS_PER_MESSAGE), "--interval", "0.01", "--max-batches", str(MESSAGES)
    )
    records = sum(end_offsets(s).values()) - sum(start.values())
    assert records >= MESSAGES  # split into parts by size

    job = JobRunner(tmp_path, offsets_json(s, start))
    log = job.run_available_now(timeout=1200)
    assert "OutOfMemoryError" not in log

    quality = list(cassandra_admin.execute("SELECT records_in, users_in, valid FROM quality_metrics"))
    assert sum(q.records_in for q in quality) == records
    assert sum(q.users_in for q in quality) == USERS_PER_MESSAGE * MESSAGES
    valid = sum(q.valid for q in quality)
    assert valid > 0.95 * USERS_PER_MESSAGE * MESSAGES  # the generator is realistic, not broken
    # Every valid user once in every store (the generator's users are all distinct people).
    mongo = mongo_db["randomUserCollection"].count_documents({})
    (cassandra_users,) = cassandra_admin.execute("SELECT count(*) FROM random_user_table").one()
    per_day = cassandra_admin.execute("SELECT day, count(*) FROM latest_users GROUP BY day")
    latest = sum(r.count for r in per_day)
    stats = sum(r.count_users for r in cassandra_admin.execute("SELECT count_users FROM country_stats"))
    assert (mongo, cassandra_users, latest, stats) == (valid, valid, valid, valid)


def _break(path: Path) -> Path:
    """Make a query's checkpoint unusable (its offsets folder becomes a file): the query fails."""
    moved = path.with_name(path.name + ".moved")
    shutil.move(path / "offsets", moved)
    (path / "offsets").write_text("not a folder\n")
    return moved


def _repair(path: Path, moved: Path) -> None:
    (path / "offsets").unlink()
    shutil.move(moved, path / "offsets")


def test_each_query_survives_the_others_crash(
    clean_stores: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    s = clean_stores
    start = end_offsets(s)
    names = ["nat-US.json", "nat-GB.json", "nat-DE.json", "nat-BR.json"]
    sent: list[str] = []

    def send(i: int) -> None:
        info, users = load_users(fixtures_dir, names[i])
        batch = envelope(users, batch_id=f"batch-{i}-{time.time_ns()}", seq=i, info=info, source="api")
        produce(s, [(batch["meta"]["batch_id"], encode(batch))])
        sent.extend(u["login"]["uuid"] for u in users)

    def in_cassandra() -> int:
        return len({r.user_id for r in cassandra_admin.execute("SELECT user_id FROM random_user_table")})

    def in_mongo() -> int:
        return int(mongo_db["randomUserCollection"].count_documents({}))

    def in_stats() -> int:
        return sum(r.count_users for r in cassandra_admin.execute("SELECT count_users FROM country_stats"))

    job = JobRunner(tmp_path, offsets_json(s, start))
    proc = job.start()
    checkpoints = job.workdir / "checkpoints"
    try:

        def running(what: str) -> Any:
            def check() -> Any:
                assert proc.poll() is None, f"job exited {proc.returncode}:\n{job.log_text()[-4000:]}"
                return what in job.log_text()

            return check

        send(0)
        wait_for(running("lake batch 0:"), 600, "the first lake batch")
        # At the start the lake waited for the serving query to catch up (Job.held), read
        # from the real progress of a real Kafka source, not from the hold's bound.
        text = job.log_text()
        assert (
            text.index("started query serving")
            < text.index("starting the lake query")
            < text.index("started query lake")
        ), text[-4000:]
        assert "the serving query caught up" in text, text[-4000:]
        wait_for(lambda: in_cassandra() == len(sent) and in_stats() == len(sent), 120, "batch 0 everywhere")

        # The lake query fails (and keeps failing on restart): users still reach the dashboard.
        moved = _break(checkpoints / "lake")
        send(1)
        wait_for(running("query lake failed"), 300, "the lake query to fail")
        wait_for(lambda: in_cassandra() == len(sent), 120, "batch 1 served while the lake is down")
        assert in_stats() < len(sent)
        _repair(checkpoints / "lake", moved)
        wait_for(lambda: in_stats() == len(sent), 300, "the lake query back, statistics complete")

        # The serving query fails: the lake goes on; once back, the serving query catches up.
        moved = _break(checkpoints / "serving")
        send(2)
        wait_for(running("query serving failed"), 300, "the serving query to fail")
        wait_for(lambda: in_stats() == len(sent), 300, "batch 2 in the lake while serving is down")
        _repair(checkpoints / "serving", moved)
        send(3)
        wait_for(lambda: in_cassandra() == in_mongo() == in_stats() == len(sent), 300, "both caught up")
        assert proc.poll() is None
        text = job.log_text()
        assert text.count("started query lake") >= 2 and text.count("started query serving") >= 2
    finally:
        job.kill(proc)
    assert sorted(d["_id"] for d in mongo_db["randomUserCollection"].find({}, {"_id": 1})) == sorted(sent)
