"""The erasure's lake part on a real Delta lake: afterwards no file of it names the person.

A small lake in tmp_path is filled batch by batch with the job's own transformations
(bronze append, quality, enrich, silver MERGE, quarantine append, each under its txn id, as
jobs/pipeline.py does) by the session's Spark with the pinned Delta jars, with a checkpoint
every two commits so the log has checkpoint files too. Then jobs/erase.py's ledger and lake
steps run, and every file under the lake is read (data files, `_delta_log` JSON commits,
checksums and checkpoints): none may hold the person's user id or email. The Delta DELETE
of a literal predicate wrote both into `commitInfo`; the MERGE through the ledger does not.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import job_settings
from common.job_settings import JobSettings
from common.settings import Settings
from jobs import erase
from jobs.core import aggregates, erasure, quality, transform
from jobs.io import delta
from tests.unit.bronze_rows import bronze_df, bronze_row, encode, envelope, load_users

APP = "test-erasure-lake"
PROCESSED = dt.datetime(2026, 11, 28, 0, 0, 5, tzinfo=dt.UTC)


def _people(fixtures_dir: Path) -> list[dict[str, Any]]:
    _, users = load_users(fixtures_dir, "nat-FR.json")
    people = []
    for i, user in enumerate(users[:5]):
        person = copy.deepcopy(user)
        person["login"]["uuid"] = str(uuid.uuid4())
        person["email"] = f"{person['name']['first'].lower()}.lake{i}.{uuid.uuid4().hex[:6]}@example.com"
        people.append(person)
    return people


def _ingest(spark: SparkSession, job: JobSettings, batch_id: int, value: bytes) -> None:
    """One micro-batch of one Kafka record, through the job's own steps (no serving stores)."""
    key, version = job.common.pseudonym.key, job.common.pseudonym.key_version
    raw = bronze_df(spark, [bronze_row(value, batch_id, key=f"batch-{batch_id}")])
    delta.append_idempotent(raw, job.table("bronze"), APP, batch_id)
    checked = quality.with_reasons(transform.users_from_bronze(raw)).persist()
    bad = quality.quarantined(checked).transform(quality.quarantine_raw(PROCESSED))
    delta.append_idempotent(bad, job.table("quarantine"), APP, batch_id)
    enriched = quality.valid(checked).transform(transform.enrich_users(key, version, PROCESSED))
    silver = aggregates.latest_per_user(enriched).select(
        "*", F.lit(APP).alias("first_app_id"), F.lit(batch_id).cast("bigint").alias("first_batch_id")
    )
    delta.merge_insert_new(spark, silver, job.table("silver_users"), ["user_id"], APP, batch_id)
    checked.unpersist()
    if batch_id == 0:
        for table in ("bronze", "quarantine", "silver_users"):
            spark.sql(
                f"ALTER TABLE delta.`{job.table(table)}` SET TBLPROPERTIES ('delta.checkpointInterval' = '2')"
            )


def _file_text(path: Path) -> str:
    """Everything a file holds, as text: every cell of a Parquet file (data or checkpoint)."""
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
        return json.dumps(
            rows, default=lambda v: v.decode(errors="replace") if isinstance(v, bytes) else str(v)
        )
    return path.read_bytes().decode(errors="replace")


def files_naming(lake: Path, needles: list[str]) -> list[str]:
    """The files under the lake whose content holds one of the needles."""
    return sorted(
        str(p.relative_to(lake))
        for p in lake.rglob("*")
        if p.is_file() and any(n in _file_text(p) for n in needles)
    )


def _silver_ids(spark: SparkSession, job: JobSettings) -> list[str]:
    return sorted(r.user_id for r in delta.read_delta(spark, job.table("silver_users")).collect())


def _erase(spark: SparkSession, job: JobSettings, user_id: str | None, email: str | None) -> dict[str, int]:
    """jobs/erase.py's ledger and lake steps (the serving stores are another test's)."""
    subject, _ = erase.resolve(spark, job, user_id, email)
    request_id, requested_at = str(uuid.uuid4()), dt.datetime.now(dt.UTC)
    keys = erase.subject_keys(subject, job.common)
    erase.record(spark, job, request_id, keys, requested_at, erasure.REQUESTED)
    report = erase.erase_lake(spark, job, subject)
    erase.record(spark, job, request_id, keys, requested_at, erasure.DONE)
    return report


@pytest.mark.timeout(1200)  # a few dozen Delta commits, MERGEs and VACUUMs on 2 shared cores
def test_after_an_erasure_no_file_of_the_lake_names_the_person(
    spark: SparkSession, settings: Settings, fixtures_dir: Path, tmp_path: Path
) -> None:
    job = dataclasses.replace(job_settings.from_settings(settings), lake_dir=tmp_path / "lake")
    alice, bob, carol, dave, erin = _people(fixtures_dir)
    alice_id, alice_email = alice["login"]["uuid"], alice["email"]
    erin_id, erin_email = erin["login"]["uuid"], erin["email"]
    invalid_alice = copy.deepcopy(alice)
    invalid_alice["email"] = "not-an-email"  # quarantined, names her by uuid
    nameless_erin = copy.deepcopy(erin)
    del nameless_erin["login"]["uuid"]  # quarantined, names her by email only
    invalid_carol = copy.deepcopy(carol)
    invalid_carol["email"] = "carol-without-at"  # quarantined, stays
    batches = [[alice, bob, carol], [alice, erin], [invalid_alice, dave], [nameless_erin, bob, invalid_carol]]
    for batch_id, users in enumerate(batches):
        _ingest(spark, job, batch_id, encode(envelope(users, batch_id=str(uuid.uuid4()), seq=batch_id)))
    # Records that cannot be parsed, naming them: quarantined whole.
    _ingest(spark, job, 4, f'{{"results": [{{"login": {{"uuid": "{alice_id}"'.encode())
    _ingest(spark, job, 5, f'{{"results": [{{"email": "{erin_email.upper()}"'.encode())

    lake = job.lake_dir
    everyone = sorted(p["login"]["uuid"] for p in (alice, bob, carol, dave, erin))
    assert _silver_ids(spark, job) == everyone
    assert all(files_naming(lake, [needle]) != [] for needle in (alice_id, alice_email, erin_id, erin_email))

    # Alice by user id. Bronze: batches 0, 1, 2 rewritten without her, record 4 deleted;
    # silver: her row; quarantine: her invalid row and record 4.
    assert _erase(spark, job, alice_id, None) == {
        "bronze_rewritten": 3,
        "bronze_deleted": 1,
        "silver_users": 1,
        "quarantine": 2,
    }
    # Erin by email. Bronze: batch 3 rewritten without her nameless row, batch 1 (now only her)
    # and record 5 deleted; silver: her row; quarantine: her nameless row and record 5.
    assert _erase(spark, job, None, f" {erin_email.upper()} ") == {
        "bronze_rewritten": 1,
        "bronze_deleted": 2,
        "silver_users": 1,
        "quarantine": 2,
    }
    assert _silver_ids(spark, job) == sorted(p["login"]["uuid"] for p in (bob, carol, dave))
    quarantine = delta.read_delta(spark, job.table("quarantine")).collect()
    assert [json.loads(r.raw_json)["login"]["uuid"] for r in quarantine] == [carol["login"]["uuid"]]
    bronze = sorted(bytes(r.value) for r in delta.read_delta(spark, job.table("bronze")).collect())
    left = [bob, carol, dave, bob, invalid_carol]  # batches 0, 2 and 3 without them
    assert sorted(u["login"]["uuid"] for v in bronze for u in json.loads(v)["results"]) == sorted(
        p["login"]["uuid"] for p in left
    )

    # No file of the lake names them: data, commits, checksums, checkpoints (there are some).
    assert list((lake / "silver_users" / "_delta_log").glob("*.checkpoint.parquet")) != []
    assert files_naming(lake, [alice_id, alice_email, erin_id, erin_email]) == []
    # ... while the others are still there, so the search reads what it should.
    assert files_naming(lake, [bob["login"]["uuid"]]) != []
