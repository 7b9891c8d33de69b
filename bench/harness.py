"""What every benchmark shares: a private namespace, the real processes, /proc sampling, results.

The benchmarks run the project's own commands (producer.py, scripts/spark-submit.sh
jobs/stream_users.py) against the local stack, in a namespace of their own (topic
`random_user_data_bench`, keyspace `random_user_keyspace_bench`, database
`randomUserDB_bench`), so demo and test data are never touched. Figures are printed with
progress and written as JSON under bench/results/; nothing here asserts a speed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import envfile
from common.settings import Settings, from_mapping
from ingest.generator import LocalGenerator
from jobs.preflight import CASSANDRA_TABLES
from ops import cassandra_setup, kafka_admin, mongo_setup

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOPIC, KEYSPACE, DATABASE = "random_user_data_bench", "random_user_keyspace_bench", "randomUserDB_bench"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Which process is which, by its command line (first match wins). The servers are shared;
# the other roles count only the benchmark's own processes (its topic in their environment),
# not a test suite's or another job's running beside it.
# Prometheus (`make monitoring`, or PROMETHEUS_ENABLED=true) is a server role when it runs: its
# flag --storage.tsdb.path is on no other command line (Kafka's and Cassandra's name their JMX
# exporter's files, hence after them).
SERVERS = ("kafka", "cassandra", "mongo server (FerretDB)", "mongo backend (PostgreSQL)", "prometheus")
ROLES: tuple[tuple[str, str], ...] = (
    ("kafka", "kafka.Kafka"),
    ("cassandra", "CassandraDaemon"),
    # FERRETDB_BACKEND=postgresql: the cluster's postmaster and its processes (before FerretDB:
    # a backend's title names its database and user, "postgres: ferretdb ferretdb ...")
    ("mongo backend (PostgreSQL)", "/bin/postgres "),
    ("mongo backend (PostgreSQL)", "postgres: "),
    ("mongo server (FerretDB)", "ferretdb"),
    ("prometheus", "--storage.tsdb.path="),
    ("spark driver (JVM)", "org.apache.spark.deploy.SparkSubmit"),
    ("spark driver (Python)", "jobs/stream_users.py"),
    ("producer", "producer.py"),
    ("dashboard", "streamlit"),
    ("dashboard", "bench.dashboard_load"),
)
_OWN_ENV = f"KAFKA_TOPIC={TOPIC}".encode()


def bench_env() -> dict[str, str]:
    """The environment of every benchmark process: the bench namespace on the local stack."""
    env = dict(os.environ)
    env.update(KAFKA_TOPIC=TOPIC, CASSANDRA_KEYSPACE=KEYSPACE, MONGO_DATABASE=DATABASE, PYTHONPATH=str(ROOT))
    return env


def say(what: str, message: str) -> None:
    print(f"[bench {what}] {message}", flush=True)


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def generator_only(seconds: float, results: int) -> float:
    """Users a second the producer's offline generator makes, alone, on one core.

    Also the machine's speed gauge: a run records it at its start (bench.end_to_end), so
    figures taken on a slower or busier host say so (the same host has run it three times
    faster on one day than on the next).
    """
    generator = LocalGenerator(seed="bench")
    users, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        users += len(generator.document(results)["results"])
    return users / (time.perf_counter() - started)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """bench/results/<name>.json, with when and where it was measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    say(name, f"results -> {path.relative_to(ROOT)}")
    return path


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles (p50, p95, p99) and the max; None when there is nothing."""
    if not values:
        return {**{f"p{p}": None for p in points}, "max": None, "n": 0}
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for p in points:
        rank = max(1, -(-p * len(ordered) // 100))  # ceil(p/100 * n)
        out[f"p{p}"] = round(ordered[rank - 1], 3)
    out["max"] = round(ordered[-1], 3)
    out["n"] = len(ordered)
    return out


def sustained(phase: dict[str, Any]) -> bool:
    """Whether the job kept up with a phase's rate: its lag did not grow over the second half
    (slope within 10% of the rate: under load the lag is a saw-tooth of one batch, so a
    smaller slope is noise over two minutes) and it caught up within 60 s once the producer
    stopped (at most a batch or two behind)."""
    drain = phase["drain_after_stop_s"]
    growth = phase["lag_users"]["growth_second_half_users_s"]
    return drain is not None and drain <= 60 and growth <= 0.10 * phase["rate_target_users_s"]


# --- namespace -----------------------------------------------------------------------------


def prepare_namespace() -> None:
    """Topic (with the platform's ACLs), keyspace and database, created like the real ones, emptied."""
    s = settings()
    kafka_admin.setup(s.kafka)
    cassandra_setup.setup(s.cassandra)
    with cassandra_setup.session(s.cassandra, s.cassandra.admin, KEYSPACE) as session:
        for table in CASSANDRA_TABLES:
            session.execute(f"TRUNCATE {KEYSPACE}.{table}")
    with mongo_setup.connect(s, s.mongo.admin) as client:
        # Dropped, not emptied: FerretDB/SQLite fails a delete_many of 60k documents. The
        # collections, not the database: dropping a database deletes its SQLite file, and
        # FerretDB 1.24 crashed (SIGBUS) when a scan was still reading it.
        for name in ("randomUserCollection", "anomalies"):
            client[DATABASE].drop_collection(name)
    mongo_setup.setup(s)


def _loaded_env() -> dict[str, str]:
    env = envfile.load(ROOT)
    env.update(KAFKA_TOPIC=TOPIC, CASSANDRA_KEYSPACE=KEYSPACE, MONGO_DATABASE=DATABASE)
    return env


def settings() -> Settings:
    return from_mapping(_loaded_env())


# --- processes -----------------------------------------------------------------------------


@dataclass
class Job:
    """The real streaming job (scripts/spark-submit.sh jobs/stream_users.py), in its own process group."""

    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def checkpoint(self) -> Path:
        """The serving query's checkpoint (what the dashboard sees)."""
        return self.checkpoints["serving"]

    @property
    def checkpoints(self) -> dict[str, Path]:
        """Both queries' checkpoints: the job keeps up only when both do."""
        return {q: self.workdir / "checkpoints" / q for q in ("serving", "lake")}

    @property
    def log(self) -> Path:
        return self.workdir / f"job-{self.starts}.log"

    def start(self, *args: str) -> None:
        self.starts += 1
        env = bench_env()
        env.update(
            LAKE_DIR=str(self.workdir / "lake"),
            CHECKPOINT_DIR=str(self.workdir / "checkpoints"),
            SPARK_UI_PORT="4190",
        )
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [str(ROOT / "scripts" / "spark-submit.sh"), "jobs/stream_users.py", "--skip-preflight", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def batch_lines(self) -> list[str]:
        if not self.log.exists():
            return []
        return [line for line in self.log.read_text(errors="replace").splitlines() if " batch " in line]


def start_producer(workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    """producer.py with the local source (the offline generator), its own spool and no metrics port."""
    (workdir / "producer").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "producer.py",
            "--source",
            "local",
            "--metrics-port",
            "0",
            "--spool-dir",
            str(workdir / "producer" / "spool"),
            "--log-level",
            "WARNING",
            *args,
        ],
        cwd=ROOT,
        env=bench_env(),
        stdout=(workdir / "producer" / "producer.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (the producer flushes what it holds), then SIGKILL if it hangs."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- /proc sampling ------------------------------------------------------------------------


def cpu_ticks(stat: str) -> int:
    """User + system CPU ticks of a process, from its /proc/<pid>/stat text."""
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])


def _processes() -> Iterator[tuple[int, str, int, int]]:
    """(pid, role, rss bytes, cpu ticks) of every process that has a role."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
        except OSError:
            continue
        role = next((r for r, needle in ROLES if needle in cmdline), None)
        if role is None or "bench/" in cmdline:
            continue
        if role not in SERVERS:
            try:
                own = _OWN_ENV in (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if not own:
                continue
        yield int(entry.name), role, int(statm[1]) * PAGE, cpu_ticks(stat)


def _machine_busy_s() -> float:
    """Seconds of CPU all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def java_heap_used(pid: int) -> int | None:
    """Bytes of Java heap in use in a JVM (jstat of its own JDK: survivor + eden + old)."""
    jstat = Path(os.environ.get("JAVA_HOME", "")) / "bin" / "jstat"
    try:
        out = subprocess.run(
            [str(jstat), "-gc", str(pid)], capture_output=True, text=True, timeout=10, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    half = len(out) // 2
    values = dict(zip(out[:half], out[half:], strict=True))
    try:
        return int(sum(float(values[k]) for k in ("S0U", "S1U", "EU", "OU")) * 1024)
    except (KeyError, ValueError):
        return None


class Sampler:
    """Peak RSS and mean CPU (% of one core) of each role, sampled every `interval` seconds,
    and the peak Java heap in use in the Spark driver (every other sample)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.peak_rss: dict[str, int] = {}
        self.total_peak_rss = 0
        self.peak_driver_heap = 0
        self._samples = 0
        self._first: dict[int, tuple[str, int, float]] = {}
        self._last: dict[int, tuple[str, int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self.started = time.monotonic()
        self._busy_start = _machine_busy_s()
        self._load: list[float] = []
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.ended = time.monotonic()
        self._busy_end = _machine_busy_s()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            rss_by_role: dict[str, int] = {}
            self._samples += 1
            for pid, role, rss, ticks in _processes():
                rss_by_role[role] = rss_by_role.get(role, 0) + rss
                self._first.setdefault(pid, (role, ticks, now))
                self._last[pid] = (role, ticks, now)
                if role == "spark driver (JVM)" and self._samples % 2 == 0:
                    self.peak_driver_heap = max(self.peak_driver_heap, java_heap_used(pid) or 0)
            for role, rss in rss_by_role.items():
                self.peak_rss[role] = max(self.peak_rss.get(role, 0), rss)
            self.total_peak_rss = max(self.total_peak_rss, sum(rss_by_role.values()))
            self._load.append(os.getloadavg()[0])
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        cpu: dict[str, float] = {}
        for pid, (role, ticks, _t) in self._last.items():
            cpu[role] = cpu.get(role, 0.0) + (ticks - self._first[pid][1]) / TICKS
        wall = max(1e-9, self.ended - self.started)
        return {
            "window_s": round(wall, 1),
            "processes": {
                role: {
                    "peak_rss_mib": round(self.peak_rss.get(role, 0) / 2**20),
                    "cpu_s": round(cpu.get(role, 0.0), 1),
                    "mean_cpu_pct_of_one_core": round(100 * cpu.get(role, 0.0) / wall, 1),
                }
                for role in sorted(self.peak_rss)
            },
            "total_peak_rss_mib": round(self.total_peak_rss / 2**20),
            "driver_peak_heap_used_mib": round(self.peak_driver_heap / 2**20),
            # What else ran: all cores' busy time not spent by the roles above, and the load.
            "machine_busy_pct_of_all_cores": round(
                100 * (self._busy_end - self._busy_start) / wall / (os.cpu_count() or 1), 1
            ),
            "other_processes_cpu_s": round(
                max(0.0, self._busy_end - self._busy_start - sum(cpu.values())), 1
            ),
            "load_average_1m": {
                "mean": round(sum(self._load) / max(1, len(self._load)), 2),
                "max": round(max(self._load, default=0.0), 2),
            },
        }


def main_guard(main: Any) -> None:
    """Run a benchmark's main with SIGTERM turned into SystemExit, so `finally` stops its processes."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
