"""`make demo`'s job on the real stack: what was produced before its first batch is delivered.

The demo starts the producer first and the job takes ~30 s to start, so records wait in the
topic before the job's first batch. `.env` says `KAFKA_STARTING_OFFSETS=latest` (the job's
specified default); the demo must start a fresh checkpoint at `earliest` all the same, and
resume an existing checkpoint where it stopped. The job is started by scripts/demo.sh itself
(`scripts/demo.sh job`: the job alone, under its supervisor), in a namespace of this module
(tests/e2e/private_namespace.py) so that `earliest` reads only what this test produced.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from cassandra.cluster import Session
from kafka import TopicPartition

from common.settings import Settings
from ops import kafka_admin
from tests.e2e.conftest import ROOT, end_offsets, produce, wait_for
from tests.e2e.private_namespace import Namespace, create_empty
from tests.unit.bronze_rows import encode, envelope, load_users


def messages(
    fixtures_dir: Path, names: list[str], first_seq: int
) -> tuple[list[tuple[str | None, bytes]], int]:
    """One Kafka record per fixture file, as the producer sends them; and the number of users."""
    out: list[tuple[str | None, bytes]] = []
    users_count = 0
    for seq, name in enumerate(names, start=first_seq):
        info, users = load_users(fixtures_dir, name)
        batch = envelope(users, batch_id=str(uuid.uuid4()), seq=seq, info=info, source="api")
        out.append((batch["meta"]["batch_id"], encode(batch)))
        users_count += len(users)
    return out, users_count


def totals(cassandra: Session, ns: Namespace) -> tuple[int, int, int]:
    """(records read from Kafka, users in them, valid users) over every batch of the job."""
    rows = list(cassandra.execute(f"SELECT records_in, users_in, valid FROM {ns.keyspace}.quality_metrics"))
    return sum(r.records_in for r in rows), sum(r.users_in for r in rows), sum(r.valid for r in rows)


class Demo:
    """scripts/demo.sh, with the environment a user's shell has (no KAFKA_STARTING_OFFSETS)."""

    def __init__(self, ns: Namespace, workdir: Path, components: tuple[str, ...] = ("job",)) -> None:
        self.components = components
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if k != "KAFKA_STARTING_OFFSETS"}
        self.env.update(
            ns.env(),
            STACK_DIR=str(workdir / "stack"),  # the demo's logs and supervisor state
            LAKE_DIR=str(workdir / "lake"),
            CHECKPOINT_DIR=str(workdir / "checkpoints"),
            SPARK_UI_PORT="4143",
            LAKE_TRIGGER_INTERVAL="2 seconds",  # as the other end-to-end tests (conftest.JobRunner)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = (self.workdir / "demo.out").open("ab")
        self.proc = subprocess.Popen(
            [str(ROOT / "scripts" / "demo.sh"), *self.components],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def job_state(self, name: str = "job") -> dict[str, Any]:
        path = self.workdir / "stack" / "supervise" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def stop(self) -> None:
        """Ctrl-C's path: SIGTERM to demo.sh, which stops the supervisor, which stops the job."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            stuck = self.stuck()
            raise AssertionError(f"the demo did not stop within 180 s after SIGTERM\n{stuck}") from None
        finally:
            self.kill()
        assert code == 0
        for name in self.components:
            assert self.job_state(name)["status"] == "stopped", name

    def stuck(self) -> str:
        """What is still running, with the Python stacks of the supervisors and the producer
        (they dump them on SIGUSR1: common/stopping.py), and the end of the demo's output."""
        ps = subprocess.run(
            ["ps", "-eo", "pid,pgid,ppid,stat,etime,args", "--sort=pgid"],
            check=False,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        groups = {str(self.proc.pid if self.proc else "")} | {
            str(self.job_state(n).get("pid")) for n in self.components
        }
        mine = [line for line in ps[1:] if line.split()[1] in groups]
        for line in mine:
            if "ops.supervise" in line or "producer.py" in line:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[0]), signal.SIGUSR1)
        time.sleep(2)
        out = (self.workdir / "demo.out").read_text(errors="replace")[-6000:]
        logs = self.workdir / "stack" / "logs"
        tails = "".join(
            f"\n--- {log.name} (end) ---\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(logs.glob("*.log"))
        )
        return "\n".join([ps[0], *mine]) + f"\n--- demo.out (end) ---\n{out}{tails}"

    def kill(self) -> None:
        """Whatever is left (the job runs in a process group of its own, under the supervisor)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        for name in self.components:
            pid = self.job_state(name).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)

    def log(self) -> str:
        path = self.workdir / "stack" / "logs" / "job.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no job log)"


def empty_topic(s: Settings) -> None:
    """Delete what earlier runs of this test left in the topic: `earliest` is then this run."""
    ends = end_offsets(s)
    with kafka_admin.admin_client(s.kafka) as admin:
        admin.delete_records({TopicPartition(s.kafka.topic, p): o for p, o in ends.items() if o})


def test_the_demo_delivers_what_was_produced_before_its_first_batch_and_resumes(
    stack: Settings, cassandra_admin: Session, mongo_db: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    ns = create_empty(stack, cassandra_admin, mongo_db, "demo")
    s = ns.settings
    empty_topic(s)
    users_db = mongo_db.client[ns.database]["randomUserCollection"]
    before, before_users = messages(fixtures_dir, ["nat-US.json", "nat-GB.json", "nat-IR.json"], 0)
    after, after_users = messages(fixtures_dir, ["nat-DE.json", "nat-ES.json"], 3)

    produce(s, before)  # the producer starts first
    demo = Demo(ns, tmp_path)
    demo.start()
    try:
        expected = (len(before), before_users)
        wait_for(
            lambda: totals(cassandra_admin, ns)[:2] == expected, 900, "the batches produced before the start"
        )
        demo.stop()

        # Restarted on its checkpoint: it reads what came since, and nothing twice.
        produce(s, after)
        demo.start()
        expected = (len(before) + len(after), before_users + after_users)
        wait_for(
            lambda: totals(cassandra_admin, ns)[:2] == expected, 900, "the batches produced while stopped"
        )
        demo.stop()
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; read so far {totals(cassandra_admin, ns)}\njob log:\n{demo.log()}"
        ) from None
    finally:
        demo.kill()

    records, users, valid = totals(cassandra_admin, ns)
    assert (records, users) == (5, before_users + after_users)
    assert users_db.count_documents({}) == valid > 0
    assert "starting offsets of a fresh checkpoint: earliest" in (tmp_path / "demo.out").read_text()


def test_a_job_that_keeps_crashing_stops_nothing_else_and_is_never_given_up(
    stack: Settings, cassandra_admin: Session, mongo_db: Any, tmp_path: Path
) -> None:
    ns = create_empty(stack, cassandra_admin, mongo_db, "demo")
    demo = Demo(ns, tmp_path, ("producer", "job"))
    demo.env.update(
        KAFKA_STARTING_OFFSETS="nowhere",  # the job refuses it at once: exit 2, every time
        PRODUCER_API_URL="http://127.0.0.1:9/api/",  # refused: the local source takes over
        PRODUCER_INTERVAL_S="1",
        PRODUCER_METRICS_PORT="0",
        PRODUCER_SPOOL_DIR=str(tmp_path / "spool"),
    )
    demo.start()
    try:
        # Three crashes in a row (ALERT_MAX_RESTARTS), then the next restart 20 s away.
        wait_for(
            lambda: demo.job_state().get("restarts", 0) >= 3 and demo.job_state()["status"] == "down",
            300,
            "three crashes of the job",
        )
        code, checks = status_of(demo)
        assert code == 1
        by_name = {c["name"]: c for c in checks}
        assert (by_name["job"]["state"], by_name["producer"]["state"]) == ("down", "ok")
        assert "exit 2" in by_name["job"]["detail"]
        assert demo.proc is not None and demo.proc.poll() is None  # the demo runs on

        published = sum(end_offsets(ns.settings).values())
        wait_for(lambda: sum(end_offsets(ns.settings).values()) > published, 60, "the producer publishing on")
        wait_for(lambda: demo.job_state().get("restarts", 0) >= 4, 120, "a fourth start of the job")
        demo.stop()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\njob log:\n{demo.log()}") from None
    finally:
        demo.kill()

    assert demo.job_state("producer")["restarts"] == 0
    stored = json.loads((tmp_path / "stack" / "alerts.json").read_text())
    notified = [(h["rule"], h["state"]) for h in stored["history"] if h["state"] != "event"]
    assert notified == [("restarts:job", "firing")]  # once, not per crash
    assert "KAFKA_STARTING_OFFSETS='nowhere'" in stored["active"]["restarts:job"]["summary"]


def status_of(demo: Demo) -> tuple[int, list[dict[str, Any]]]:
    """`make status`'s supervisor rows for the demo's processes: exit code and checks."""
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "ops.status", "--only", "supervisor", "--json"],
        cwd=ROOT,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out.returncode, json.loads(out.stdout)["checks"]
