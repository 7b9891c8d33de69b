"""How many users a second the streaming job processes, per wall second and per CPU second.

Prints figures, asserts nothing (docs/SCALING.md uses them):
  1. `producer.py --source local --rate R --results U --max-batches B` fills the topic
     `random_user_data_bench` (never the tests' or the demo's: other tests read theirs)
     with a backlog (B messages of U users);
  2. the real job (`scripts/spark-submit.sh jobs/stream_users.py --available-now`, local[2])
     drains it in micro-batches of KAFKA_MAX_OFFSETS_PER_TRIGGER messages, into a private
     lake and the `bench` keyspace/database (never the demo's or the tests');
  3. for each "batch N:" line of the job's log: users, the batch's wall time, and the CPU
     time the job's processes (driver JVM with its local executors, Python) used meanwhile,
     read from /proc. Users per CPU-second is what a core delivers when it is not shared,
     which a busy machine's wall time hides; the load average is printed with each batch.

    .venv/bin/python bench/job_rate.py [--batches 40] [--results 500] [--per-batch 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster
from kafka import KafkaConsumer, TopicPartition
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.settings import Settings, load  # noqa: E402
from ops import kafka_admin  # noqa: E402
from ops.cassandra_setup import ddl_statements  # noqa: E402
from ops.mongo_setup import ensure_collections, load_ddl  # noqa: E402

KEYSPACE, DATABASE = "random_user_keyspace_bench_test", "randomUserDB_bench_test"
BATCH_LINE = re.compile(r"batch (\d+): records=(\d+) users=(\d+) .* ms\[.*total=(\d+)\]")
TICKS = os.sysconf("SC_CLK_TCK")


def bench_namespace(s: Settings) -> None:
    """The bench keyspace and database, created like the real ones and emptied."""
    c = s.cassandra
    cluster = Cluster(
        list(c.hosts), port=c.port, auth_provider=PlainTextAuthProvider(c.admin.user, c.admin.password)
    )
    try:
        session = cluster.connect()
        for statement in ddl_statements(KEYSPACE, c.replication_cql):
            session.execute(statement)
        for permission in ("MODIFY", "SELECT"):
            session.execute(f"GRANT {permission} ON KEYSPACE {KEYSPACE} TO {c.writer.user}")
        for table in ("random_user_table", "latest_users", "quality_metrics"):
            session.execute(f"TRUNCATE {KEYSPACE}.{table}")
    finally:
        cluster.shutdown()
    client: MongoClient[dict[str, object]] = MongoClient(s.mongo.uri(s.mongo.admin))
    try:
        ensure_collections(client[DATABASE], load_ddl())
        client[DATABASE]["randomUserCollection"].delete_many({})
    finally:
        client.close()


def end_offsets(s: Settings) -> str:
    consumer = KafkaConsumer(**s.kafka.client_config(s.kafka.admin))
    try:
        parts = [
            TopicPartition(s.kafka.topic, p) for p in sorted(consumer.partitions_for_topic(s.kafka.topic))
        ]
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
    return json.dumps({s.kafka.topic: {str(tp.partition): o for tp, o in ends.items()}})


def cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process of the group (threads included)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the job too
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=40, help="messages produced")
    parser.add_argument("--results", type=int, default=500, help="users per message")
    parser.add_argument("--rate", type=int, default=5000, help="producer load-mode rate, users/s")
    parser.add_argument("--per-batch", type=int, default=10, help="KAFKA_MAX_OFFSETS_PER_TRIGGER")
    args = parser.parse_args()
    os.environ.setdefault("KAFKA_TOPIC", "random_user_data_bench")
    s = load()
    kafka_admin.setup(s.kafka)  # the bench topic, with the platform's ACLs
    bench_namespace(s)
    start = end_offsets(s)
    work = Path(tempfile.mkdtemp(prefix="job_rate-"))
    env = dict(os.environ)
    subprocess.run(
        [
            str(ROOT / ".venv/bin/python"),
            "producer.py",
            "--source",
            "local",
            "--rate",
            str(args.rate),
            "--results",
            str(args.results),
            "--max-batches",
            str(args.batches),
            "--metrics-port",
            "0",
            "--spool-dir",
            str(work / "spool"),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    env.update(
        LAKE_DIR=str(work / "lake"),
        CHECKPOINT_DIR=str(work / "checkpoints"),
        KAFKA_STARTING_OFFSETS=start,
        KAFKA_MAX_OFFSETS_PER_TRIGGER=str(args.per_batch),
        CASSANDRA_KEYSPACE=KEYSPACE,
        MONGO_DATABASE=DATABASE,
        SPARK_UI_PORT="4190",
    )
    log = work / "job.log"
    proc = subprocess.Popen(
        [str(ROOT / "scripts/spark-submit.sh"), "jobs/stream_users.py", "--available-now"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    print(f"job log: {log}")
    print("batch  users  wall_s  cpu_s  users/s(wall)  users/cpu_s  load1")
    seen, last_cpu = 0, 0.0
    try:
        while True:
            done = proc.poll() is not None
            lines = [m for m in BATCH_LINE.finditer(log.read_text(errors="replace"))]
            cpu = cpu_seconds(proc.pid) if not done else last_cpu
            for m in lines[seen:]:
                batch, users, wall = int(m.group(1)), int(m.group(3)), int(m.group(4)) / 1000
                used = cpu - last_cpu
                load1 = os.getloadavg()[0]
                print(
                    f"{batch:5d}  {users:5d}  {wall:6.1f}  {used:5.1f}  {users / wall:13.0f}  "
                    f"{users / used if used else 0:11.0f}  {load1:5.1f}",
                    flush=True,
                )
                last_cpu = cpu
            seen = len(lines)
            if done:
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
