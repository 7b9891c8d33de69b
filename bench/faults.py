"""The whole pipeline under server faults, then every store checked against the topic.

The real job runs under ops.supervise (as `make demo` runs it) and the real producer (local
source) sends a steady load while the servers fail one after another:

  cassandra   Cassandra stopped for --outage seconds, then started again
  sigkill     the job's driver JVM SIGKILLed (the supervisor restarts it)
  ferretdb    FerretDB stopped and started again at once
  kafka       Kafka stopped for --outage seconds (the producer spools), then started again

Then the producer stops, the job works off what is left, and the stores are compared with
what the topic holds, record by record (nothing is taken from the job's own accounts):

- each user of the topic is served (Mongo users, both Cassandra user tables) or quarantined
  (a Mongo anomaly named by its topic, partition, offset and position), never both, never
  missing, never twice; nothing is served or quarantined that the topic does not hold;
- country_stats equals a recomputation from the served users' records;
- quality_metrics counts every record and user of the topic once.

Results (each fault's time to recover, the job's restarts, every check) go to
bench/results/<label>.json; the run exits 1 when a check fails.

    .venv/bin/python -m bench.faults [--rate 100] [--outage 60] [--faults cassandra,sigkill,ferretdb,kafka]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from bench.harness import (
    DATABASE,
    KEYSPACE,
    ROOT,
    TOPIC,
    _processes,
    bench_env,
    generator_only,
    prepare_namespace,
    say,
    settings,
    start_producer,
    stop,
    write_result,
)
from common.clients import cassandra_cluster, mongo_client
from ops import lag as job_lag

FAULTS = ("cassandra", "sigkill", "ferretdb", "kafka")
WORKDIR = ROOT / ".stack" / "bench-faults"


def stack(*args: str) -> None:
    """scripts/stack.sh, its output in the run's log; a failure raises."""
    with (WORKDIR / "stack.log").open("ab") as out:
        command = [str(ROOT / "scripts" / "stack.sh"), *args]
        subprocess.run(command, cwd=ROOT, stdout=out, stderr=out, check=True)


def lags() -> dict[str, int | None]:
    """Records each query has not committed yet (None: no batch committed yet)."""
    s = settings()
    out: dict[str, int | None] = {}
    for query in ("serving", "lake"):
        try:
            report = job_lag.lag(s.kafka, WORKDIR / "checkpoints" / query)
            out[query] = None if report.batch_id is None else report.total
        except Exception:  # Kafka down or the checkpoint half written: not known now
            out[query] = None
    return out


def wait(what: str, done: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until done() holds, with a progress line every 15 s; None on timeout."""
    started = time.monotonic()
    last = started
    while time.monotonic() - started < timeout:
        if done():
            return round(time.monotonic() - started, 1)
        if time.monotonic() - last >= 15:
            say("faults", f"{what}: {time.monotonic() - started:.0f}s, lag {lags()}")
            last = time.monotonic()
        time.sleep(2)
    return None


def caught_up(threshold: int) -> Callable[[], bool]:
    def check() -> bool:
        values = lags().values()
        return all(v is not None and v <= threshold for v in values)

    return check


def topic_users(start: dict[int, int], end: dict[int, int]) -> tuple[list[dict[str, Any]], int]:
    """Every user the run put in the topic: its position and record; and the record count."""
    s = settings()
    consumer = KafkaConsumer(**s.kafka.client_config(s.kafka.admin), enable_auto_commit=False)
    users: list[dict[str, Any]] = []
    records = 0
    try:
        parts = [TopicPartition(TOPIC, p) for p in end]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start.get(tp.partition, 0))
        remaining = {p: end[p] - start.get(p, 0) for p in end}
        while any(n > 0 for n in remaining.values()):
            for tp, batch in consumer.poll(timeout_ms=5000).items():
                for r in batch:
                    if r.offset >= end[tp.partition]:
                        continue
                    remaining[tp.partition] -= 1
                    records += 1
                    value = orjson.loads(r.value)
                    for position, user in enumerate(value["results"]):
                        users.append({"id": f"{TOPIC}-{tp.partition}-{r.offset}-{position}", "user": user})
    finally:
        consumer.close()
    return users, records


def check_stores(start: dict[int, int], end: dict[int, int]) -> dict[str, Any]:
    """Every store against the topic (module docstring); each check's verdict and counts."""
    s = settings()
    users, records = topic_users(start, end)
    with mongo_client(s, s.mongo.admin) as client:
        db = client[DATABASE]
        mongo_ids = [d["_id"] for d in db["randomUserCollection"].find({}, {"_id": 1})]
        anomaly_ids = {d["_id"] for d in db["anomalies"].find({}, {"_id": 1})}
    cluster = cassandra_cluster(s.cassandra, s.cassandra.admin)
    try:
        cql = cluster.connect(KEYSPACE)
        table_ids = [r.user_id for r in cql.execute("SELECT user_id FROM random_user_table")]
        latest_ids = [r.user_id for r in cql.execute("SELECT user_id FROM latest_users")]
        stats = {
            r.country: (r.count_users, r.sum_age, r.male_count, r.female_count)
            for r in cql.execute(
                "SELECT country, count_users, sum_age, male_count, female_count FROM country_stats"
            )
        }
        quality = list(cql.execute("SELECT records_in, users_in, valid, quarantined FROM quality_metrics"))
    finally:
        cluster.shutdown()

    quarantined = [u for u in users if u["id"] in anomaly_ids]
    served = {u["user"]["login"]["uuid"]: u["user"] for u in users if u["id"] not in anomaly_ids}
    want = sorted(served)
    want_stats: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for u in served.values():
        row = want_stats[u["location"]["country"]]
        row[0] += 1
        row[1] += u["dob"]["age"]
        row[2] += u["gender"] == "male"
        row[3] += u["gender"] == "female"
    checks = {
        "mongo users: each served user once, nothing else": sorted(mongo_ids) == want,
        "random_user_table: each served user once, nothing else": sorted(table_ids) == want,
        "latest_users: each served user once, nothing else": sorted(latest_ids) == want,
        "anomalies: each quarantined user of the topic, nothing else": len(quarantined) == len(anomaly_ids),
        "country_stats: equal to a recomputation from the topic": stats
        == {k: tuple(v) for k, v in want_stats.items()},
        "quality_metrics: every record once": sum(q.records_in for q in quality) == records,
        "quality_metrics: every user once": sum(q.users_in for q in quality) == len(users)
        and sum(q.valid + q.quarantined for q in quality) == len(users),
    }
    counts = {
        "records": records,
        "users in the topic": len(users),
        "served (distinct users)": len(want),
        "quarantined": len(quarantined),
        "mongo users": len(mongo_ids),
        "mongo anomalies": len(anomaly_ids),
        "random_user_table": len(table_ids),
        "latest_users": len(latest_ids),
        "quality_metrics users_in": sum(q.users_in for q in quality),
        "missing from mongo": len(set(want) - set(mongo_ids)),
        "missing from random_user_table": len(set(want) - set(table_ids)),
    }
    return {"checks": checks, "counts": counts}


def supervisor_lines(log: Path) -> list[str]:
    """The supervisor's lines: the job's exits (code, after how long) and restarts."""
    if not log.exists():
        return []
    return [line for line in log.read_text(errors="replace").splitlines() if " supervise: " in line][-40:]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=100, help="users/s the producer sends (100 per message)")
    parser.add_argument("--outage", type=float, default=60, help="seconds Cassandra and Kafka stay down")
    parser.add_argument("--warmup", type=float, default=60, help="seconds of load before the first fault")
    parser.add_argument("--between", type=float, default=40, help="seconds of load after each recovery")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"in this order, of {','.join(FAULTS)}")
    parser.add_argument("--recover-timeout", type=float, default=900)
    parser.add_argument("--label", default="faults", help="results file name")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}: choose from {FAULTS}")

    # The host's speed varies up to 3x between days: the generator alone, as bench.end_to_end.
    gauge = round(generator_only(5.0, 500))
    say("faults", f"speed gauge {gauge:,} users/s (the producer's generator alone)")
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    say("faults", f"namespace {TOPIC} / {KEYSPACE} / {DATABASE}, work folder {WORKDIR}")
    stack("up")
    prepare_namespace()
    start = job_lag.end_offsets(settings().kafka, TOPIC)
    env = bench_env()
    env.update(
        LAKE_DIR=str(WORKDIR / "lake"),
        CHECKPOINT_DIR=str(WORKDIR / "checkpoints"),
        KAFKA_STARTING_OFFSETS=json.dumps({TOPIC: {str(p): o for p, o in start.items()}}),
        SPARK_UI_PORT="4191",
    )
    job_log = WORKDIR / "job.log"
    supervisor = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "ops.supervise",
            "bench-faults-job",
            "--backoff",
            "5",
            "--log",
            str(job_log),
            "--",
            str(ROOT / "scripts" / "spark-submit.sh"),
            str(ROOT / "jobs" / "stream_users.py"),
        ],
        cwd=ROOT,
        env=env,
        stdout=(WORKDIR / "supervisor.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    producer = start_producer(WORKDIR, "--rate", str(args.rate), "--results", "100")
    result: dict[str, Any] = {"args": vars(args), "speed_gauge_users_per_s": gauge, "faults": []}
    failed = False
    try:
        say("faults", f"load {args.rate} users/s; the job's first batches")
        if wait("first batches", caught_up(10**9), 600) is None:
            raise RuntimeError(f"the job committed no batch in 600 s: see {job_log}")
        time.sleep(args.warmup)
        for fault in faults:
            began = time.monotonic()
            say("faults", f"fault: {fault}")
            if fault == "cassandra":
                stack("down", "cassandra")
                time.sleep(args.outage)
                stack("up", "cassandra")
            elif fault == "sigkill":
                # The bench's own driver JVM (its environment names the bench topic).
                pids = [pid for pid, role, _, _ in _processes() if role == "spark driver (JVM)"]
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                say("faults", f"SIGKILLed the driver JVM {pids}")
            elif fault == "ferretdb":
                stack("down", "ferretdb")
                stack("up", "ferretdb")
            elif fault == "kafka":
                stack("down", "kafka")
                time.sleep(args.outage)
                stack("up", "kafka")
            healed = round(time.monotonic() - began, 1)
            # Back: both queries committed what was there when the fault ended (lag one load
            # trigger's worth at most: 2 lake triggers of records).
            threshold = max(50, args.rate * 60 // 100)
            recovered = wait(f"after {fault}", caught_up(threshold), args.recover_timeout)
            say("faults", f"{fault}: servers back after {healed}s, job caught up {recovered}s later")
            result["faults"].append({"fault": fault, "healed_s": healed, "caught_up_s": recovered})
            time.sleep(args.between)
        say("faults", "stopping the producer; the job works off the rest")
    finally:
        stop(producer)
    end = job_lag.end_offsets(settings().kafka, TOPIC)
    try:
        drained = wait("drain", caught_up(0), args.recover_timeout)
        result["drained_s"] = drained
        say("faults", f"drained after {drained}s; comparing every store with the topic")
        result.update(check_stores(start, end))
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(supervisor.pid, signal.SIGKILL)
        # Its state file would show a stopped job in `make status` from now on.
        (settings().stack.stack_dir / "supervise" / "bench-faults-job.json").unlink(missing_ok=True)
    result["supervisor"] = supervisor_lines(WORKDIR / "supervisor.log")
    for name, ok in result.get("checks", {}).items():
        say("faults", f"{'ok  ' if ok else 'FAIL'} {name}")
        failed |= not ok
    say("faults", f"counts: {result.get('counts')}")
    write_result(args.label, result)
    return 1 if failed or "checks" not in result else 0


if __name__ == "__main__":
    raise SystemExit(main())
