"""jobs.poison_batches: the attempt ledger, the halving of a batch, the walk over its parts
(resumed after a crash), the sink-level probe, and the quarantine row of a failed record."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from common import job_settings
from common import settings as common_settings
from jobs import poison_batches as pb
from jobs.core import quality, transform
from jobs.io import retry
from tests.unit.bronze_rows import PROCESSED, TOPIC, bronze_df, bronze_row, encode, envelope
from tests.unit.settings_env import minimal_env

T = "random_user_data"


def _offsets_file(path: Path, offsets: dict[str, int], *, initial: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({T: offsets})
    if initial:  # Spark's sources/0/0: a version byte before "v1", no metadata line
        path.write_bytes(b"\x00v1\n" + line.encode())
    else:
        meta = json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 1796011114481, "conf": {"a": "1"}})
        path.write_text(f"v1\n{meta}\n{line}")


def test_a_batch_s_offset_ranges_come_from_its_checkpoint(tmp_path: Path) -> None:
    cp = tmp_path / "lake"
    _offsets_file(cp / "sources" / "0" / "0", {"0": 5, "1": 7, "2": 0}, initial=True)
    _offsets_file(cp / "offsets" / "0", {"0": 8, "1": 7, "2": 2})
    _offsets_file(cp / "offsets" / "1", {"0": 9, "1": 10, "2": 2})
    assert pb.batch_spans(cp, 0) == [pb.Span(T, 0, 5, 8), pb.Span(T, 2, 0, 2)]
    assert pb.batch_spans(cp, 1) == [pb.Span(T, 0, 8, 9), pb.Span(T, 1, 7, 10)]


def test_a_part_is_halved_by_partition_first_then_by_offset() -> None:
    spans = [pb.Span(T, 0, 0, 4), pb.Span(T, 1, 10, 11), pb.Span(T, 2, 0, 3)]
    assert pb.halves(spans) == (spans[:1], spans[1:])  # 4 | 1 + 3: the boundary nearest the middle
    assert pb.halves([pb.Span(T, 0, 0, 5)]) == ([pb.Span(T, 0, 0, 2)], [pb.Span(T, 0, 2, 5)])
    assert pb.halves([pb.Span(T, 0, 7, 8)]) is None
    whole = pb.Part(1, spans)
    children = whole.children()
    assert children is not None
    assert [(c.number, c.spans) for c in children] == [(2, spans[:1]), (3, spans[1:])]
    assert not whole.single and pb.Part(9, [pb.Span(T, 1, 10, 11)]).single
    assert pb.part_batch_id(7, 5) == 8_000_000_005
    assert pb.part_batch_id(0, 2) == 1_000_000_002  # not mistaken for the query's batch 2
    assert pb.part_app_id("lake-x", 7, 5) == "lake-x/batch-7/part-5"
    with pytest.raises(ValueError, match="outside"):
        pb.part_batch_id(7, 1)


def test_the_ledger_counts_an_attempt_before_it_runs_and_a_crash_as_a_failure(tmp_path: Path) -> None:
    cp = tmp_path / "checkpoints" / "lake"
    ledger = pb.AttemptLedger.beside(cp, "app-1")
    assert ledger.path == tmp_path / "checkpoints" / "lake.failing.json"
    assert ledger.begin(4).attempts == 1
    ledger.failed("Boom: bad record")
    # The next process: an attempt that began and never ended is a crash.
    ledger = pb.AttemptLedger.beside(cp, "app-1")
    assert ledger.begin(4).attempts == 2
    state = pb.AttemptLedger.beside(cp, "app-1").begin(4)  # the previous one died (e.g. OOM)
    assert (state.attempts, state.errors) == (3, ["Boom: bad record", pb.CRASHED])
    # A server was down: that attempt does not count.
    ledger = pb.AttemptLedger.beside(cp, "app-1")
    ledger.begin(4)
    ledger.forgive()
    state = pb.AttemptLedger.beside(cp, "app-1").begin(4)
    assert (state.attempts, state.errors) == (4, ["Boom: bad record", pb.CRASHED, pb.CRASHED])
    # Another batch, or another checkpoint's app id, starts the count over.
    assert pb.AttemptLedger.beside(cp, "app-1").begin(5).attempts == 1
    assert pb.AttemptLedger.beside(cp, "app-2").begin(5).attempts == 1
    ledger = pb.AttemptLedger.beside(cp, "app-2")
    ledger.begin(5)
    ledger.clear()
    assert sorted(p.name for p in cp.parent.iterdir()) == []  # no temporary file left either


class Crash(BaseException):
    """The process dying in the middle of a part (what a JVM OutOfMemoryError does)."""


class FakeBatch:
    """Records (partition, offset); processing a part fails when it holds a poison record."""

    def __init__(
        self,
        spans: list[pb.Span],
        poison: set[tuple[int, int]],
        error: Callable[[tuple[int, int]], Exception] = lambda r: ValueError(f"cannot write record {r}"),
    ) -> None:
        self.spans = spans
        self.poison = poison
        self.error = error
        self.delivered: list[tuple[int, int]] = []
        self.runs: list[int] = []
        self.quarantined: list[tuple[list[pb.Span], str]] = []
        self.crash_at: int | None = None
        self.up = True

    def records(self, part: pb.Part) -> list[tuple[int, int]]:
        return [(s.partition, o) for s in part.spans for o in range(s.start, s.end)]

    def run_part(self, part: pb.Part) -> None:
        self.runs.append(part.number)
        if part.number == self.crash_at:
            self.crash_at = None
            raise Crash
        bad = [r for r in self.records(part) if r in self.poison]
        if bad:
            raise self.error(bad[0])
        self.delivered.extend(self.records(part))

    def quarantine(self, part: pb.Part, error: str) -> None:
        self.quarantined.append((part.spans, error))

    def walk(self, ledger: pb.AttemptLedger, attempts: int = 2) -> pb.Walk:
        return pb.Walk(ledger, attempts, self.run_part, self.quarantine, lambda _p, _c: None, lambda: self.up)


SPANS = [pb.Span(T, 0, 0, 5), pb.Span(T, 1, 0, 3)]
ALL = [(0, o) for o in range(5)] + [(1, o) for o in range(3)]


def test_a_failed_batch_is_halved_until_its_poison_record_is_alone(tmp_path: Path) -> None:
    batch = FakeBatch(SPANS, poison={(0, 3)})
    ledger = pb.AttemptLedger.beside(tmp_path / "lake", "app")
    ledger.begin(0)
    batch.walk(ledger).run(pb.Part(1, SPANS))
    # 1 = p0 0..4 + p1 0..2 -> 2 = p0 0..4 (fails), 3 = p1 0..2 (ok); 2 -> 4 = 0..1 (ok),
    # 5 = 2..4 (fails) -> 10 = 2 (ok), 11 = 3..4 (fails) -> 22 = 3 (fails twice), 23 = 4 (ok).
    assert batch.runs == [2, 4, 5, 10, 11, 22, 22, 23, 3]
    assert sorted(batch.delivered) == sorted(r for r in ALL if r != (0, 3))  # each once
    assert batch.quarantined == [([pb.Span(T, 0, 3, 4)], "ValueError: cannot write record (0, 3)")]
    assert ledger.state is not None
    assert {n: p.state for n, p in ledger.state.parts.items()} == {
        2: pb.SPLIT, 3: pb.DONE, 4: pb.DONE, 5: pb.SPLIT, 10: pb.DONE, 11: pb.SPLIT,
        22: pb.QUARANTINED, 23: pb.DONE,
    }  # fmt: skip


ANCIENT = (
    "org.apache.spark.SparkUpgradeException: [INCONSISTENT_BEHAVIOR_CROSS_VERSION.WRITE_ANCIENT_DATETIME] "
    "You may get a different result due to the upgrading to Spark >= 3.0: writing dates before 1582"
)


def py4j_error(root_cause: str) -> Exception:
    """What a failed Spark action raises in Python: py4j's call line, then the Java causes."""
    return RuntimeError(
        f"An error occurred while calling o3221.execute.\nCaused by: {root_cause}\n\t... 9 more"
    )


def test_a_record_whose_error_blames_its_data_is_quarantined_after_one_attempt(tmp_path: Path) -> None:
    batch = FakeBatch(SPANS, poison={(0, 3)}, error=lambda _r: py4j_error(ANCIENT))
    ledger = pb.AttemptLedger.beside(tmp_path / "lake", "app")
    ledger.begin(0)
    batch.walk(ledger, attempts=3).run(pb.Part(1, SPANS))
    assert batch.runs == [2, 4, 5, 10, 11, 22, 23, 3]  # 22, the record, once: not 3 times
    assert sorted(batch.delivered) == sorted(r for r in ALL if r != (0, 3))
    assert batch.quarantined == [([pb.Span(T, 0, 3, 4)], ANCIENT)]


def test_spark_errors_that_blame_the_data_are_told_from_the_others() -> None:
    blame_data = [
        ANCIENT,
        "org.apache.spark.SparkArithmeticException: [DIVIDE_BY_ZERO] Division by zero.",
        "org.apache.spark.SparkNumberFormatException: [CAST_INVALID_INPUT] The value 'x' of the type ...",
        "org.apache.spark.sql.delta.schema.DeltaInvariantViolationException: "
        "[DELTA_NOT_NULL_CONSTRAINT_VIOLATED] NOT NULL constraint violated for column: user_id.",
        # PySpark's own class for it (pyspark.errors), when it converts the Java error
        "SparkUpgradeException: [INCONSISTENT_BEHAVIOR_CROSS_VERSION.READ_ANCIENT_DATETIME] You may get",
    ]
    others = [
        "org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to file:/l",
        "org.apache.spark.sql.delta.ConcurrentAppendException: [DELTA_CONCURRENT_APPEND] Files were added",
        "com.datastax.oss.driver.api.core.AllNodesFailedException: All 1 node(s) tried failed",
        "java.io.IOException: [DIVIDE_BY_ZERO] a message that only quotes a class",
        "ValueError: cannot write record (0, 3)",
        pb.CRASHED,
        "",
    ]
    assert [retry.data_error(line) for line in blame_data + others] == [True] * 5 + [False] * 7


def test_a_write_failing_with_an_error_of_its_data_goes_to_the_batch_at_once() -> None:
    calls: list[int] = []
    up = [False, True]  # a server down at the first failure: retried all the same

    def ancient() -> None:
        calls.append(1)
        raise py4j_error(ANCIENT)

    with pytest.raises(RuntimeError, match="WRITE_ANCIENT_DATETIME"):
        retry.with_retries(
            "silver", ancient, sleep=lambda _s: None, failure_probe=retry.FailureProbe(lambda: up.pop(0))
        )
    assert (len(calls), up) == (2, [])  # each failure probed the servers; the 2nd found them up


def test_a_split_cut_by_a_crash_goes_on_where_it_was_after_the_restart(tmp_path: Path) -> None:
    batch = FakeBatch(SPANS, poison={(0, 3)})
    batch.crash_at = 10
    ledger = pb.AttemptLedger.beside(tmp_path / "lake", "app")
    ledger.begin(0)
    with pytest.raises(Crash):
        batch.walk(ledger).run(pb.Part(1, SPANS))
    # The restarted process: done parts are not run again; the part that was running counts
    # one attempt (a part of several records would be halved; this one is a single record).
    ledger = pb.AttemptLedger.beside(tmp_path / "lake", "app")
    state = ledger.begin(0)
    assert state.splitting
    batch.walk(ledger).run(pb.Part(1, SPANS))
    assert batch.runs == [2, 4, 5, 10, 10, 11, 22, 22, 23, 3]
    assert sorted(batch.delivered) == sorted(r for r in ALL if r != (0, 3))
    assert [s for s, _ in batch.quarantined] == [[pb.Span(T, 0, 3, 4)]]


def test_a_part_that_crashes_the_process_is_halved_and_a_record_that_does_is_quarantined(
    tmp_path: Path,
) -> None:
    batch = FakeBatch([pb.Span(T, 0, 0, 2)], poison=set())
    batch.crash_at = 2
    ledger = pb.AttemptLedger.beside(tmp_path / "lake", "app")
    ledger.begin(0)
    with pytest.raises(Crash):
        batch.walk(ledger, attempts=1).run(pb.Part(1, [pb.Span(T, 0, 0, 2)]))
    ledger = pb.AttemptLedger.beside(tmp_path / "lake", "app")
    ledger.begin(0)
    batch.walk(ledger, attempts=1).run(pb.Part(1, [pb.Span(T, 0, 0, 2)]))
    assert batch.runs == [2, 3]  # part 2 (offset 0) died once: attempts=1 -> not run again
    assert batch.quarantined == [([pb.Span(T, 0, 0, 1)], pb.CRASHED)]
    assert batch.delivered == [(0, 1)]


def test_a_part_failing_while_a_server_is_down_is_not_counted_and_fails_the_batch(tmp_path: Path) -> None:
    batch = FakeBatch(SPANS, poison={(1, 0)})
    batch.up = False
    ledger = pb.AttemptLedger.beside(tmp_path / "lake", "app")
    ledger.begin(0)
    with pytest.raises(ValueError, match="cannot write"):
        batch.walk(ledger).run(pb.Part(1, SPANS))
    assert ledger.state is not None
    assert ledger.state.parts[3].attempts == 0 and batch.quarantined == []
    batch.up = True
    batch.walk(ledger).run(pb.Part(1, SPANS))
    assert [s for s, _ in batch.quarantined] == [[pb.Span(T, 1, 0, 1)]]
    assert sorted(batch.delivered) == sorted(r for r in ALL if r != (1, 0))


def test_a_write_failing_the_same_way_with_every_server_up_goes_to_the_batch() -> None:
    calls: list[int] = []
    probes: list[int] = []

    def rejected() -> None:
        calls.append(1)
        raise ValueError(f"value rejected in task {len(calls)} of stage 12.{len(calls)}")

    def up() -> bool:
        probes.append(1)
        return True

    with pytest.raises(ValueError, match="value rejected"):
        retry.with_retries("silver", rejected, sleep=lambda _s: None, failure_probe=retry.FailureProbe(up))
    assert (len(calls), len(probes)) == (3, 1)  # numbers aside, the same error three times


def test_a_write_failing_while_a_server_is_down_is_retried_until_it_succeeds() -> None:
    calls: list[int] = []
    probes: list[int] = []

    def down_then_up() -> str:
        calls.append(1)
        if len(calls) < 8:
            raise ConnectionError("Cassandra unavailable")
        return "written"

    def down() -> bool:
        probes.append(1)
        return False

    probe = retry.FailureProbe(down)
    assert (
        retry.with_retries("cassandra", down_then_up, sleep=lambda _s: None, failure_probe=probe) == "written"
    )
    assert (len(calls), len(probes)) == (8, 2)  # probed after the 3rd and the 6th failure


def test_different_errors_in_a_row_are_not_identical_failures() -> None:
    errors = iter([ValueError("a"), KeyError("b"), ValueError("a"), TypeError("c"), ValueError("a")])

    def flaky() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "ok"

    probe = retry.FailureProbe(lambda: pytest.fail("never probed"))
    assert retry.with_retries("mongo", flaky, sleep=lambda _s: None, failure_probe=probe) == "ok"


def test_the_error_line_of_a_java_error_is_its_root_cause() -> None:
    text = (
        "An error occurred while calling o46.save.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 failed\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2898)\n"
        "Caused by: org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows\n"
        "Caused by: org.apache.spark.SparkUpgradeException: [INCONSISTENT_BEHAVIOR_CROSS_VERSION."
        "WRITE_ANCIENT_DATETIME] You may get a different result\n"
        "\t... 12 more\n"
    )
    assert retry.error_line(RuntimeError(text)) == (
        "org.apache.spark.SparkUpgradeException: [INCONSISTENT_BEHAVIOR_CROSS_VERSION."
        "WRITE_ANCIENT_DATETIME] You may get a different result"
    )
    assert retry.error_line(
        RuntimeError("An error occurred while calling o1.x.\n: java.io.IOException: gone")
    ) == ("java.io.IOException: gone")
    assert retry.error_line(ValueError("plain")) == "ValueError: plain"


def test_a_failed_record_s_quarantine_row_has_the_quarantine_s_columns_and_types_plus_its_error(
    spark: SparkSession,
) -> None:
    message = envelope([], batch_id="b-1")
    value = encode(message)
    raw = bronze_df(spark, [bronze_row(value, 42, key="b-1", partition=2)])
    rows = pb.failed_quarantine_rows(raw, "lake", "SparkUpgradeException: ancient", PROCESSED)
    # The table's own columns, as the lake path writes them (a message row of a bad message).
    reference = quality.quarantine_raw(PROCESSED)(
        quality.quarantined(quality.with_reasons(transform.users_from_bronze(raw)))
    )
    assert [(f.name, f.dataType) for f in rows.schema.fields] == [
        *[(f.name, f.dataType) for f in reference.schema.fields],
        ("error", rows.schema["error"].dataType),
    ]
    assert [r.asDict() for r in rows.collect()] == [
        {
            "anomaly_id": f"{TOPIC}-2-42-processing_failed-lake",
            "topic": TOPIC,
            "partition": 2,
            "offset": 42,
            "kafka_timestamp": dt.datetime(2030, 1, 1),
            "kafka_key": "b-1",
            "position": None,
            "user_index": None,
            "batch_id": "b-1",
            "reasons": ["processing_failed"],
            "ingestion_time": None,
            "processed_time": dt.datetime(2026, 11, 28, 0, 0, 5),
            "raw_json": value.decode(),
            "raw_value": bytearray(value),
            "error": "lake: SparkUpgradeException: ancient",
        }
    ]
    documents = pb.failed_documents(raw, "lake", "SparkUpgradeException: ancient", PROCESSED).collect()
    assert [d.asDict() for d in documents] == [
        {
            "_id": f"{TOPIC}-2-42-processing_failed-lake",
            "topic": TOPIC,
            "partition": 2,
            "offset": 42,
            "position": None,
            "user_index": None,
            "batch_id": "b-1",
            "producer_id": "unit-producer",
            "seq": 1,
            "source": "replay",
            "reasons": ["processing_failed"],
            "ingestion_time": None,
            "processed_time": dt.datetime(2026, 11, 28, 0, 0, 5),
            "user_id": None,
            "raw_sha256": hashlib.sha256(value).hexdigest(),
            "raw_bytes": len(value),
            "query": "lake",
            "error": "SparkUpgradeException: ancient",
        }
    ]


def test_poison_batch_attempts_is_a_validated_setting() -> None:
    load = job_settings.from_settings
    assert load(common_settings.from_mapping(minimal_env())).poison_batch_attempts == 3
    assert (
        load(common_settings.from_mapping(minimal_env(POISON_BATCH_ATTEMPTS="1"))).poison_batch_attempts == 1
    )
    with pytest.raises(common_settings.SettingsError, match=r"POISON_BATCH_ATTEMPTS=0 is outside 1\.\.100"):
        load(common_settings.from_mapping(minimal_env(POISON_BATCH_ATTEMPTS="0")))
