"""The unchanged job on a Spark standalone cluster: a master and a worker from the pyspark install.

The worker runs without the project on its PYTHONPATH, so the executors can only get the
project's code from the zip scripts/spark-submit.sh ships with --py-files; the test finds
it in the executor's working directory. Checkpoints and the lake are in a local temporary
directory, which every executor sees because they share this machine (docs/SCALING.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest
from cassandra.cluster import Session
from cassandra.query import ValueSequence

from common.settings import Settings
from tests.conftest import java17_home
from tests.e2e.conftest import ROOT, JobRunner, end_offsets, offsets_json, produce, wait_for
from tests.e2e.private_namespace import create_empty
from tests.unit.bronze_rows import encode, envelope, load_users

MASTER = "spark://127.0.0.1:7077"
SPARK_HOME = Path(pyspark.__file__).resolve().parent


def _daemon_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        JAVA_HOME=str(java17_home()),
        SPARK_HOME=str(SPARK_HOME),
        SPARK_CONF_DIR=str(workdir / "conf"),
        SPARK_DAEMON_MEMORY="512m",  # the -Xmx of the master and the worker
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_WORKER_DIR=str(workdir / "work"),
        SPARK_LOCAL_DIRS=str(workdir / "local"),
        PYSPARK_PYTHON=str(ROOT / ".venv" / "bin" / "python"),
    )
    return env


def _start(workdir: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        [str(SPARK_HOME / "bin" / "spark-class"), *args],
        cwd=workdir,
        env=_daemon_env(workdir),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture
def standalone_cluster(tmp_path: Path) -> Iterator[Path]:
    """A master and one worker (1 core, 1 GiB for executors) on 127.0.0.1; yields the worker dir."""
    workdir = tmp_path / "cluster"
    for sub in ("conf", "work", "local"):
        (workdir / sub).mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master, master_log = _start(
            workdir,
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            "7077",
            "--webui-port",
            "8090",
        )
        procs.append(master)
        wait_for(
            lambda: (
                "I have been elected leader" in master_log.read_text(errors="replace")
                or master.poll() is not None
            ),
            180,
            "the Spark master",
        )
        assert master.poll() is None, master_log.read_text(errors="replace")[-3000:]
        worker, worker_log = _start(
            workdir,
            "worker",
            "org.apache.spark.deploy.worker.Worker",
            MASTER,
            "--cores",
            "1",
            "--memory",
            "1g",
            "--webui-port",
            "8091",
        )
        procs.append(worker)
        wait_for(
            lambda: (
                "Successfully registered with master" in worker_log.read_text(errors="replace")
                or worker.poll() is not None
            ),
            180,
            "the Spark worker to register",
        )
        assert worker.poll() is None, worker_log.read_text(errors="replace")[-3000:]
        yield workdir / "work"
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_the_job_runs_unchanged_on_a_standalone_cluster(
    stack: Settings,
    standalone_cluster: Path,
    cassandra_admin: Session,
    mongo_db: Any,
    fixtures_dir: Path,
    tmp_path: Path,
) -> None:
    s = stack
    ns = create_empty(s, cassandra_admin, mongo_db, "cluster")
    s = ns.settings  # our own topic
    start = end_offsets(s)
    # New people (fresh uuids): the shared test topic may also carry other tests' records.
    expected: dict[str, dict[str, Any]] = {}
    messages: list[tuple[str | None, bytes]] = []
    for seq, name in enumerate(["nat-NO.json", "nat-MX.json"]):
        info, users = load_users(fixtures_dir, name)
        for u in users:
            u["login"]["uuid"] = str(uuid.uuid4())
            expected[u["login"]["uuid"]] = u
        batch = envelope(users, batch_id=str(uuid.uuid4()), seq=seq, info=info, source="api")
        messages.append((batch["meta"]["batch_id"], encode(batch)))
    produce(s, messages)

    job = JobRunner(tmp_path / "job", offsets_json(s, start), extra_env={"SPARK_MASTER": MASTER, **ns.env()})
    job.workdir.mkdir()
    log = job.run_available_now()
    assert "batch 0:" in log

    ids = sorted(expected)
    docs = {
        d["_id"]: d for d in mongo_db.client[ns.database]["randomUserCollection"].find({"_id": {"$in": ids}})
    }
    assert {uid: (d["full_name"], d["country"], d["age"]) for uid, d in docs.items()} == {
        uid: (f"{u['name']['first']} {u['name']['last']}", u["location"]["country"], u["dob"]["age"])
        for uid, u in expected.items()
    }
    rows = cassandra_admin.execute(
        f"SELECT user_id, full_name, country, age FROM {ns.keyspace}.random_user_table WHERE user_id IN %s",
        (ValueSequence(ids),),
    )
    assert sorted((r.user_id, r.full_name, r.country, r.age) for r in rows) == sorted(
        (uid, f"{u['name']['first']} {u['name']['last']}", u["location"]["country"], u["dob"]["age"])
        for uid, u in expected.items()
    )
    # The work ran in the worker's executor, which fetched the project's zip (--py-files).
    shipped = list(standalone_cluster.glob("app-*/*/project-*.zip"))
    assert len(shipped) == 1, sorted(str(p) for p in standalone_cluster.rglob("*"))[:50]
    with zipfile.ZipFile(shipped[0]) as z:
        assert {"jobs/pipeline.py", "jobs/stream_users.py", "common/settings.py"} <= set(z.namelist())
