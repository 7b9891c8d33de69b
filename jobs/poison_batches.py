"""A micro-batch that fails the same way every time: processed in parts, its bad records quarantined.

Without this, a batch that always fails (data a sink rejects, a bug hit by one record, an
out-of-memory) is retried forever: its query stalls, and every restart replays it. Here,
as Kafka Connect does with its dead-letter queue:

1. Every attempt of a batch is recorded in a small ledger beside the query's checkpoint
   (`checkpoints/<query>.failing.json`, written atomically) BEFORE it runs, and cleared
   when it returned: an attempt that killed the driver (a JVM OutOfMemoryError ends the
   process) is counted too.
2. A failure counts only while every server answers (`servers_up`, a cheap connect as
   the preflight does): a server that is down is retried without end, as before. Within
   a batch, jobs.retry.with_retries gives a write's error to the batch after a few
   identical failures with every server up (jobs.retry.FailureProbe).
3. After POISON_BATCH_ATTEMPTS failed attempts the batch is processed in parts: its Kafka
   offset ranges (from the checkpoint: offsets/N-1 .. offsets/N) halved by partition, then
   by offset, recursively. A part that fails is halved again at once; a single record
   that fails POISON_BATCH_ATTEMPTS times is quarantined (Delta `quarantine` with its raw
   bytes and Mongo `anomalies`, reason `processing_failed`, with the error's line) and an
   alert is raised. Then the batch returns normally and Spark commits it.
4. Progress (which part is done, split, quarantined; attempts per part) is in the same
   ledger: after a crash the split goes on where it was.

Exactly-once through a split (docs/ARCHITECTURE.md, "A batch that always fails"):
- every part is processed by the same processor, under an identity of its own that a rerun
  finds again: Delta app id `<app id>/batch-<N>/part-<h>` and batch id N*10^9+h (h: the
  part's place in the halving tree, 1 = the whole batch), so its Delta writes are guarded
  by their own (app id, version), its silver rows stamped with them, its gold increment
  read back by them, and its quality_metrics row keyed apart from its siblings';
- what an attempt of a part (or of the whole batch) committed before it failed is not
  written again by its halves: for bronze and the quarantine (appends), the halves' Delta
  transactions are registered as done (an empty commit with their txn id) when the failed
  part's own transaction is in the table's log; a part whose silver MERGE committed is
  not split at all (its users are in silver, and their aggregates belong to that part):
  it is retried without end with an alert, as before;
- Cassandra and Mongo writes are keyed by the producer's identities, the same whatever the
  part, and the quarantine of a failed record has a key of its own (Delta txn
  `<part app id>/failed`, anomaly id `<topic>-<partition>-<offset>-processing_failed-<query>`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from common.settings import Settings
from jobs import preflight
from jobs.core.transform import literal_time
from jobs.io import delta, kafka, mongo, retry
from ops import alerts

log = logging.getLogger(__name__)

REASON = "processing_failed"
# A part's batch id: (N + 1) * PART_BASE + its place in the halving tree (depth < 30): never
# a batch id of the query itself (below PART_BASE), also for the parts of batch 0.
PART_BASE = 10**9
DONE, SPLIT, QUARANTINED = "done", "split", "quarantined"
CRASHED = "the process ended during the attempt (e.g. a JVM OutOfMemoryError)"


# --- offset ranges and their halves -------------------------------------------------------


@dataclass(frozen=True, order=True)
class Span:
    """The offsets [start, end) of one Kafka partition."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def label(self) -> str:
        if self.size == 1:
            return f"{self.topic}-{self.partition}@{self.start}"
        return f"{self.topic}-{self.partition}@{self.start}..{self.end - 1}"


def _offsets_line(path: Path) -> dict[str, dict[str, int]]:
    """The Kafka source's offsets in a checkpoint file (offsets/N, sources/0/0): its JSON line."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        text = line[line.find("{") :] if "{" in line else ""
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            return {t: {str(p): int(o) for p, o in parts.items()} for t, parts in value.items()}
    raise ValueError(f"no Kafka offsets in {path}")


def batch_spans(checkpoint: Path, batch_id: int) -> list[Span]:
    """The offset ranges of a batch: from the previous batch's end offsets (or the query's
    starting offsets, sources/0/0) to its own, as Spark recorded them before running it."""
    end = _offsets_line(checkpoint / "offsets" / str(batch_id))
    previous = checkpoint / "offsets" / str(batch_id - 1)
    initial = checkpoint / "sources" / "0" / "0"
    start = _offsets_line(previous) if previous.is_file() else _offsets_line(initial)
    spans = []
    for topic, parts in end.items():
        for partition, stop in parts.items():
            begin = start.get(topic, {}).get(partition, 0)
            if stop > begin:
                spans.append(Span(topic, int(partition), begin, stop))
    return sorted(spans)


def halves(spans: list[Span]) -> tuple[list[Span], list[Span]] | None:
    """Two halves of a part: by partition first (the boundary nearest the middle record),
    then by offset; None for a single record."""
    total = sum(s.size for s in spans)
    if total <= 1:
        return None
    if len(spans) > 1:
        best, acc, best_gap = 1, 0, None
        for i, span in enumerate(spans[:-1], start=1):
            acc += span.size
            gap = abs(total - 2 * acc)
            if best_gap is None or gap < best_gap:
                best, best_gap = i, gap
        return spans[:best], spans[best:]
    (span,) = spans
    middle = span.start + span.size // 2
    return (
        [dataclasses.replace(span, end=middle)],
        [dataclasses.replace(span, start=middle)],
    )


@dataclass(frozen=True)
class Part:
    """A node of the halving tree: `number` 1 is the whole batch, 2h and 2h+1 are h's halves."""

    number: int
    spans: list[Span]

    def children(self) -> list[Part] | None:
        split = halves(self.spans)
        if split is None:
            return None
        return [Part(2 * self.number, split[0]), Part(2 * self.number + 1, split[1])]

    @property
    def single(self) -> bool:
        return sum(s.size for s in self.spans) == 1

    def label(self) -> str:
        return ", ".join(s.label() for s in self.spans) or "(no record)"


def part_batch_id(batch_id: int, part: int) -> int:
    """The batch id a part is processed under (its Delta txn version, its quality_metrics key)."""
    if not 1 < part < PART_BASE:
        raise ValueError(f"part {part} is outside 2..{PART_BASE - 1}")
    return (batch_id + 1) * PART_BASE + part


def part_app_id(app_id: str, batch_id: int, part: int) -> str:
    """The Delta app id of a part: its own, so its versions never guard another's writes."""
    return f"{app_id}/batch-{batch_id}/part-{part}"


# --- the ledger -----------------------------------------------------------------------------


@dataclass
class PartState:
    attempts: int = 0
    state: str = ""  # "" (not finished), done, split, quarantined
    error: str = ""


@dataclass
class BatchState:
    app_id: str
    batch_id: int
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    parts: dict[int, PartState] = field(default_factory=dict)
    running: bool = False  # an attempt began and has not ended (if found so: the process died)
    alerted: bool = False  # the alert that a failed part cannot be split was raised

    @property
    def splitting(self) -> bool:
        return bool(self.parts)


class AttemptLedger:
    """The attempts of the batch a query is running, in one JSON file written atomically."""

    KEEP_ERRORS = 5

    def __init__(self, path: Path, app_id: str) -> None:
        self.path = path
        self.app_id = app_id
        self.state: BatchState | None = None

    @classmethod
    def beside(cls, checkpoint: Path, app_id: str) -> AttemptLedger:
        return cls(checkpoint.parent / f"{checkpoint.name}.failing.json", app_id)

    def _read(self) -> BatchState | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            state = BatchState(
                app_id=str(data["app_id"]),
                batch_id=int(data["batch_id"]),
                attempts=int(data["attempts"]),
                errors=[str(e) for e in data.get("errors", [])],
                parts={int(k): PartState(**v) for k, v in (data.get("parts") or {}).items()},
                running=bool(data.get("running", False)),
                alerted=bool(data.get("alerted", False)),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s is unreadable (%s): starting its count over", self.path, exc)
            return None
        return state if state.app_id == self.app_id else None  # another checkpoint's

    def save(self) -> None:
        assert self.state is not None
        data = dataclasses.asdict(self.state)
        data["parts"] = {str(k): v for k, v in data["parts"].items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def begin(self, batch_id: int) -> BatchState:
        """Count an attempt of `batch_id` (before it runs) and return the batch's state."""
        state = self._read()
        if state is None or state.batch_id != batch_id:
            state = BatchState(self.app_id, batch_id)
        elif state.running and not state.splitting:
            state.errors = [*state.errors, CRASHED][-self.KEEP_ERRORS :]
        state.attempts += 1
        state.running = True
        self.state = state
        self.save()
        return state

    def failed(self, error: str) -> BatchState:
        assert self.state is not None
        self.state.errors = [*self.state.errors, error][-self.KEEP_ERRORS :]
        self.state.running = False
        self.save()
        return self.state

    def forgive(self) -> None:
        """The attempt failed because a server is down: it does not count."""
        assert self.state is not None
        self.state.attempts -= 1
        self.state.running = False
        self.save()

    def part(self, number: int) -> PartState:
        assert self.state is not None
        return self.state.parts.setdefault(number, PartState())

    def clear(self) -> None:
        self.state = None
        self.path.unlink(missing_ok=True)


# --- walking the halves -----------------------------------------------------------------------


class Unsplittable(RuntimeError):
    """A failed part committed its silver MERGE: its halves cannot be processed apart."""


@dataclass
class Walk:
    """The halving of one failed batch, with the Spark and server work given as callables.

    run_part(part) processes a part (raises on failure); quarantine(part, error) puts a
    single record in the quarantine; before_split(part, halves) runs once a part failed and
    before its halves run (raises Unsplittable to stop); servers_up() tells a failure of a
    server (not counted, re-raised) from one of the data.
    """

    ledger: AttemptLedger
    attempts: int
    run_part: Callable[[Part], None]
    quarantine: Callable[[Part, str], None]
    before_split: Callable[[Part, list[Part]], None]
    servers_up: Callable[[], bool]
    quarantined: list[tuple[Part, str]] = field(default_factory=list)

    def run(self, whole: Part) -> None:
        if not whole.spans:
            raise RuntimeError(f"nothing to split: no offsets recorded for the batch ({self._last_error()})")
        children = whole.children()
        if children is None:  # the whole batch is one record
            self._failed(whole, self._last_error())
            return
        self._split(whole, children)

    def _last_error(self) -> str:
        state = self.ledger.state
        return state.errors[-1] if state is not None and state.errors else CRASHED

    def _split(self, part: Part, children: list[Part]) -> None:
        self.before_split(part, children)
        if part.number > 1:
            self.ledger.part(part.number).state = SPLIT
            self.ledger.save()
        for child in children:
            self._visit(child)

    def _visit(self, part: Part) -> None:
        record = self.ledger.part(part.number)
        if record.state in (DONE, QUARANTINED):
            return
        children = part.children()
        if record.state == SPLIT and children is not None:
            self._split(part, children)
            return
        # A part of several records is halved after one failure; a single record is tried as
        # often as a whole batch before it is called bad (a failure may still be a server's),
        # unless its error blames its data (retry.data_error): that fails the same way again.
        limit = self.attempts if children is None else 1
        if record.attempts >= limit and not record.error:
            record.error = CRASHED  # counted before it ran, never finished: the process died
        while record.attempts < limit and not retry.data_error(record.error or ""):
            record.attempts += 1
            self.ledger.save()
            try:
                self.run_part(part)
            except Exception as exc:
                if not self.servers_up():
                    record.attempts -= 1
                    self.ledger.save()
                    raise
                record.error = retry.error_line(exc)
                self.ledger.save()
                log.warning("part %d (%s) failed: %s", part.number, part.label(), record.error)
                continue
            record.state = DONE
            self.ledger.save()
            return
        if children is None:
            self._failed(part, record.error or CRASHED)
        else:
            self._split(part, children)

    def _failed(self, part: Part, error: str) -> None:
        self.quarantine(part, error)
        self.quarantined.append((part, error))
        if part.number > 1:
            self.ledger.part(part.number).state = QUARANTINED
            self.ledger.save()


# --- Spark: parts, Delta transactions, the quarantine ------------------------------------------


def span_filter(spans: list[Span]) -> Column:
    """Rows of a DataFrame with topic/partition/offset columns that fall in `spans`."""
    condition = F.lit(False)
    for s in spans:
        condition = condition | (
            (F.col("topic") == s.topic)
            & (F.col("partition") == s.partition)
            & (F.col("offset") >= s.start)
            & (F.col("offset") < s.end)
        )
    return condition


def register_txn(spark: SparkSession, path: str, app_id: str, version: int) -> None:
    """Record (app_id, version) as done in the table: a later write under it is skipped."""
    schema = delta.read_delta(spark, path).schema
    delta.append_idempotent(spark.createDataFrame([], schema), path, app_id, version)


# The Delta quarantine's columns (quality.quarantine_raw) and their types, plus `error`.
QUARANTINE_TYPES = (
    ("anomaly_id", "string"),
    ("topic", "string"),
    ("partition", "int"),
    ("offset", "bigint"),
    ("kafka_timestamp", "timestamp"),
    ("kafka_key", "string"),
    ("position", "int"),
    ("user_index", "int"),
    ("batch_id", "string"),
    ("reasons", "array<string>"),
    ("ingestion_time", "timestamp"),
    ("processed_time", "timestamp"),
    ("raw_json", "string"),
    ("raw_value", "binary"),
    ("error", "string"),
)


def _anomaly_id(query: str) -> Column:
    return F.concat_ws("-", "topic", "partition", "offset", F.lit(REASON), F.lit(query))


def _meta(name: str) -> Column:
    # Read without parsing the message into the schema (that may be what fails): null if absent.
    return F.get_json_object(F.col("value").cast("string"), f"$.meta.{name}")


def failed_quarantine_rows(raw: DataFrame, query: str, error: str, processed: dt.datetime) -> DataFrame:
    """Raw Kafka rows of records that failed processing -> rows of the Delta quarantine:
    the untouched record (raw_value), reason processing_failed, the error's line; nothing
    parsed (ingestion_time null: the message's own fields may be what failed)."""
    values: dict[str, Column] = {
        "anomaly_id": _anomaly_id(query),
        "topic": F.col("topic"),
        "partition": F.col("partition"),
        "offset": F.col("offset"),
        "kafka_timestamp": F.col("timestamp"),
        "kafka_key": F.col("key").cast("string"),
        "batch_id": _meta("batch_id"),
        "reasons": F.array(F.lit(REASON)),
        "processed_time": literal_time(processed),
        "raw_json": F.col("value").cast("string"),
        "raw_value": F.col("value"),
        "error": F.lit(f"{query}: {error}"),
    }
    return raw.select(
        *[values.get(name, F.lit(None)).cast(kind).alias(name) for name, kind in QUARANTINE_TYPES]
    )


def failed_documents(raw: DataFrame, query: str, error: str, processed: dt.datetime) -> DataFrame:
    """Raw Kafka rows of records that failed processing -> Mongo `anomalies` documents (no
    personal data: the record only as its SHA-256 and length, as for a message row)."""
    return raw.select(
        _anomaly_id(query).alias("_id"),
        "topic",
        "partition",
        "offset",
        F.lit(None).cast("int").alias("position"),
        F.lit(None).cast("int").alias("user_index"),
        _meta("batch_id").alias("batch_id"),
        _meta("producer_id").alias("producer_id"),
        _meta("seq").cast("bigint").alias("seq"),
        _meta("source").alias("source"),
        F.array(F.lit(REASON)).alias("reasons"),
        F.lit(None).cast("timestamp").alias("ingestion_time"),
        literal_time(processed).alias("processed_time"),
        F.lit(None).cast("string").alias("user_id"),
        F.sha2(F.col("value"), 256).alias("raw_sha256"),
        F.length(F.col("value")).alias("raw_bytes"),
        F.lit(query).alias("query"),
        F.lit(error).alias("error"),
    )


def read_records(spark: SparkSession, job: Any, spans: list[Span]) -> DataFrame:
    """The raw Kafka records of `spans`, read again from Kafka (a batch read, as the job's user)."""
    k = job.common.kafka
    frames = []
    for s in spans:
        frames.append(
            spark.read.format("kafka")
            .options(**kafka.kafka_options(job.common, k.job))
            .option("assign", json.dumps({s.topic: [s.partition]}))
            .option("startingOffsets", json.dumps({s.topic: {str(s.partition): s.start}}))
            .option("endingOffsets", json.dumps({s.topic: {str(s.partition): s.end}}))
            .option("groupIdPrefix", k.job_group_prefix)
            .option("includeHeaders", "true")
            .option("failOnDataLoss", "false")
            .load()
        )
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def servers_up(settings: Settings) -> bool:
    """Kafka, Cassandra and Mongo answer as the job's accounts (the preflight's checks)."""
    try:
        preflight.run(settings)
    except preflight.PreflightError as exc:
        log.warning("a server does not answer: %s", exc)
        return False
    return True


def raise_alert(job: Any, severity: str, rule: str, summary: str, details: dict[str, Any]) -> None:
    """One alert through every configured channel and into the alert file (never raises)."""
    env = job.common.env
    try:
        store = alerts.AlertStore(alerts.alert_file(env, job.common.stack.stack_dir))
        alerts.dispatch(
            alerts.Alert(rule, severity, "event", summary, details=details),
            alerts.channels_from_env(env),
            store,
        )
    except Exception:  # an alert must not stop the batch
        log.exception("could not raise the alert %s: %s", rule, summary)


# --- the processor's entry ---------------------------------------------------------------------


def run_batch(
    processor: Any, df: DataFrame, batch_id: int, *, lake: bool, new_report: Callable[..., Any]
) -> None:
    """foreachBatch of a query with a checkpoint: the batch, counted in the ledger, and
    processed in parts once it failed POISON_BATCH_ATTEMPTS times (see the module doc).

    `processor`: a jobs.pipeline processor (`process`, `app_id`, `checkpoint`, `job`, ...);
    `lake`: it writes Delta (the parts' transactions are then checked and registered);
    `new_report`: jobs.pipeline.BatchReport (the split batch's report sums its parts').
    """
    job = processor.job
    ledger = AttemptLedger.beside(processor.checkpoint, processor.app_id)
    state = ledger.begin(batch_id)
    limit = job.poison_batch_attempts
    if state.attempts <= limit and not state.splitting:
        try:
            processor.process(df, batch_id)
        except Exception as exc:
            if not servers_up(job.common):
                ledger.forgive()  # a server is down: not the batch's fault, retried as always
                raise
            error = retry.error_line(exc)
            ledger.failed(error)
            # An error that blames the data fails the same way again: processed in parts at once.
            if state.attempts < limit and not retry.data_error(error):
                log.error(
                    "%s batch %d failed (attempt %d; processed in parts after %d): %s",
                    processor.query,
                    batch_id,
                    state.attempts,
                    limit,
                    error,
                )
                raise
        else:
            ledger.clear()
            return
    _Split(processor, df, batch_id, lake, ledger, new_report).run()
    ledger.clear()


class _Split:
    """One failed batch processed in parts by its own processor (see Walk for the order)."""

    def __init__(
        self,
        processor: Any,
        df: DataFrame,
        batch_id: int,
        lake: bool,
        ledger: AttemptLedger,
        new_report: Callable[..., Any],
    ) -> None:
        self.processor = processor
        self.job = processor.job
        self.spark: SparkSession = processor.spark
        self.query: str = processor.query
        self.df = df
        self.batch_id = batch_id
        self.lake = lake
        self.ledger = ledger
        self.started: dt.datetime = processor.batch_time(batch_id)
        self.reports: list[Any] = []
        self.new_report = new_report

    def ids(self, part: Part) -> tuple[str, int]:
        """(Delta app id, batch id) a part is processed under; the whole batch keeps its own."""
        if part.number == 1:
            return self.processor.app_id, self.batch_id
        return part_app_id(self.processor.app_id, self.batch_id, part.number), part_batch_id(
            self.batch_id, part.number
        )

    def run(self) -> None:
        t0 = time.monotonic()
        state = self.ledger.state
        assert state is not None
        whole = Part(1, batch_spans(self.processor.checkpoint, self.batch_id))
        failures = len(state.errors)
        log.error(
            "%s batch %d failed %d time%s (%s): processing it in parts (%s)",
            self.query,
            self.batch_id,
            failures,
            "" if failures == 1 else "s",
            state.errors[-1] if state.errors else CRASHED,
            whole.label(),
        )
        # Raw Kafka rows are cheap to keep for the parts; the serving query's rows are its
        # parsed plan, which may be what fails: each part computes only its own records.
        self.source = self.df.persist() if self.lake else self.df
        walk = Walk(
            self.ledger,
            self.job.poison_batch_attempts,
            self.run_part,
            self.quarantine,
            self.before_split,
            lambda: servers_up(self.job.common),
        )
        try:
            walk.run(whole)
        finally:
            if self.lake:
                self.source.unpersist()
        self.report(walk, round((time.monotonic() - t0) * 1000))

    def run_part(self, part: Part) -> None:
        app_id, part_id = self.ids(part)
        log.info(
            "%s batch %d: part %d (%s) as %s", self.query, self.batch_id, part.number, part.label(), part_id
        )
        clone = copy.copy(self.processor)
        clone.app_id = app_id
        clone.on_report = None  # one report for the batch, at the end
        started = self.started
        clone.batch_time = lambda _batch_id: started  # the batch's planned time, not the clock
        self.reports.append(clone.process(self.source.where(span_filter(part.spans)), part_id))

    def before_split(self, part: Part, children: list[Part]) -> None:
        if not self.lake:
            return
        app_id, part_id = self.ids(part)
        if delta.txn_committed(self.spark, self.job.table("silver_users"), app_id, part_id):
            state = self.ledger.state
            assert state is not None
            summary = (
                f"{self.query} batch {self.batch_id}: part {part.label()} fails after its users were "
                "merged into silver, so it cannot be processed in smaller parts; retried without end"
            )
            if not state.alerted:
                raise_alert(
                    self.job,
                    "critical",
                    f"unsplittable:{self.query}",
                    summary,
                    {"query": self.query, "batch_id": self.batch_id, "part": part.label()},
                )
                state.alerted = True
                self.ledger.save()
            raise Unsplittable(summary)
        # What the failed part appended is not appended again by its halves.
        for table in ("bronze", "quarantine"):
            path = self.job.table(table)
            if delta.txn_committed(self.spark, path, app_id, part_id):
                for child in children:
                    self._register(table, path, *self.ids(child))

    def _register(self, table: str, path: str, app_id: str, version: int) -> None:
        retry.with_retries(
            f"{table}_registered",
            lambda: register_txn(self.spark, path, app_id, version),
            stall_timeout=self.job.sink_stall_timeout_s,
        )

    def quarantine(self, part: Part, error: str) -> None:
        app_id, part_id = self.ids(part)
        raw = (
            self.source.where(span_filter(part.spans))
            if self.lake
            else read_records(self.spark, self.job, part.spans)
        )
        rows = failed_quarantine_rows(raw, self.query, error, self.started)
        path = self.job.table("quarantine")

        def append() -> None:
            (
                rows.write.format("delta")
                .mode("append")
                .option("txnAppId", f"{app_id}/failed")
                .option("txnVersion", str(part_id))
                .option("mergeSchema", "true")  # the `error` column, on the first such record
                .save(path)
            )

        timeout = self.job.sink_stall_timeout_s
        retry.with_retries("quarantine_failed", append, stall_timeout=timeout)
        documents = failed_documents(raw, self.query, error, self.started)
        retry.with_retries(
            "mongo_failed", lambda: mongo.write_mongo(documents, self.job, "anomalies"), stall_timeout=timeout
        )
        how = (
            "an error of its data, not retried"
            if retry.data_error(error)
            else f"{self.job.poison_batch_attempts} times"
        )
        summary = (
            f"{self.query} batch {self.batch_id}: record {part.label()} failed processing alone "
            f"({how}) and was quarantined ({REASON}): {error}"
        )
        log.error(summary)
        raise_alert(
            self.job,
            "critical",
            f"{REASON}:{self.query}",
            summary,
            {"query": self.query, "batch_id": self.batch_id, "record": part.label(), "error": error},
        )

    def report(self, walk: Walk, millis: int) -> None:
        total = self.new_report(self.batch_id, query=self.query)
        for r in self.reports:
            for name in ("records_in", "users_in", "valid", "quarantined", "new_users"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
        total.records_in += len(walk.quarantined)
        total.quarantined += len(walk.quarantined)
        total.durations_ms["parts"] = len(self.reports)
        total.durations_ms["total"] = millis
        log.info(
            "%s (processed in %d parts; %d record(s) quarantined as %s)",
            total.line(),
            len(self.reports),
            len(walk.quarantined),
            REASON,
        )
        if self.processor.on_report is not None:
            self.processor.on_report(total)
