"""Rebuild MongoDB and Cassandra from the Delta bronze table, through the live job's own code.

Run it with `scripts/spark-submit.sh jobs/replay_bronze.py [options]` (docs/REPLAY.md).

Bronze (read from the live lake, pinned to one Delta version) is ordered by
(Kafka timestamp, topic, partition, offset), cut into chunks of N records, and each chunk
goes through jobs.pipeline.ServingProcessor and LakeProcessor exactly like live micro-batches, with:
- a replay lake of its own (silver and gold rebuilt from nothing): replaying into the live
  lake would project nothing, since the live silver already has every user id;
- a replay app id of its own, so Delta does not skip the writes as done by the live job;
- bronze never appended again (`write_bronze=False`).
The plan (app id, bronze version, chunk boundaries, chunks done) is kept in the replay lake:
a replay killed at any moment resumes at the chunk it was in, with the same batch id, so
Delta's idempotent writes and the upserts make the rerun exact, as in the live job.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from common import job_settings
from common.job_settings import JobSettings
from common.settings import SettingsError
from jobs import pipeline, preflight
from jobs.core import erasure, transform
from jobs.io import delta, retry
from jobs.io.session import spark_session
from jobs.pipeline import GOLD_TABLE, BatchReport, LakeProcessor, ServingProcessor, gold_projections

log = logging.getLogger("jobs.replay_bronze")
APP_NAME = "replay_bronze"
STATE_FILE = "_replay_state.json"
TIME_FIELDS = ("kafka", "fetched_at")
# The total order of bronze records: (Kafka timestamp in µs, topic, partition, offset).
KEY_COLUMNS = ("ts", "topic", "partition", "offset")

Offsets = dict[str, dict[int, int]]
Key = tuple[int, str, int, int]
# Tables of the live lake the replay reads and never writes.
SHARED_TABLES = ("bronze", erasure.LEDGER_TABLE)


@dataclass(frozen=True)
class ReplayJobSettings(JobSettings):
    """The live settings with the replay's own lake, except for the tables it only reads.

    Silver, gold and quarantine are the replay lake's; bronze and the erasure ledger stay
    the live lake's, so whatever reads `job.table(LEDGER_TABLE)` (the erasure filter) sees
    every erasure, also those requested after the replay started.
    """

    live_lake_dir: Path = Path()

    def table(self, name: str) -> str:
        return str((self.live_lake_dir if name in SHARED_TABLES else self.lake_dir) / name)

    @classmethod
    def of(cls, live: JobSettings, replay_lake: Path) -> ReplayJobSettings:
        values = {f.name: getattr(live, f.name) for f in dataclasses.fields(JobSettings)}
        values["lake_dir"] = replay_lake
        return cls(**values, live_lake_dir=live.lake_dir)


class ReplayError(RuntimeError):
    """The replay cannot start as asked; the message says why and what to do."""


def parse_time(text: str) -> dt.datetime:
    """An ISO-8601 instant; without a zone it is taken as UTC."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(f"{text!r} is not an ISO-8601 time (e.g. 2026-11-27T23:00:00Z)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def parse_offsets(text: str) -> Offsets:
    """Spark's offsets JSON, {"topic": {"0": 42, ...}}, with plain non-negative offsets."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"offsets {text!r} are not JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or not raw:
        raise ReplayError(f'offsets {text!r} must look like {{"topic": {{"0": 42}}}}')
    out: Offsets = {}
    for topic, parts in raw.items():
        if not isinstance(parts, dict) or not parts:
            raise ReplayError(f"offsets of topic {topic!r} must be a non-empty map partition -> offset")
        out[topic] = {}
        for part, offset in parts.items():
            if not str(part).isdigit() or not isinstance(offset, int) or offset < 0:
                raise ReplayError(
                    f"offsets of {topic!r}: {part!r} -> {offset!r} must be partition -> offset >= 0"
                )
            out[topic][int(part)] = offset
    return out


@dataclass(frozen=True)
class ReplayRange:
    """Which bronze records to replay: all, a time range [from, to), an offset range [from, to)."""

    from_time: dt.datetime | None = None
    to_time: dt.datetime | None = None
    time_field: str = "kafka"
    from_offsets: Offsets | None = None
    to_offsets: Offsets | None = None

    @property
    def is_everything(self) -> bool:
        return not (self.from_time or self.to_time or self.from_offsets or self.to_offsets)

    def as_json(self) -> dict[str, Any]:
        return {
            "from_time": self.from_time.isoformat() if self.from_time else None,
            "to_time": self.to_time.isoformat() if self.to_time else None,
            "time_field": self.time_field,
            "from_offsets": self.from_offsets,
            "to_offsets": self.to_offsets,
        }

    def condition(self) -> Column:
        """The filter on bronze rows; partitions not named in an offsets map are not bounded by it."""
        cond = F.lit(True)
        when = (
            F.col("timestamp")
            if self.time_field == "kafka"
            else transform.iso_instant(F.get_json_object(F.col("value").cast("string"), "$.meta.fetched_at"))
        )
        if self.from_time is not None:
            cond &= when >= transform.literal_time(self.from_time)
        if self.to_time is not None:
            cond &= when < transform.literal_time(self.to_time)
        for offsets, before in ((self.from_offsets, False), (self.to_offsets, True)):
            for topic, parts in (offsets or {}).items():
                for part, offset in parts.items():
                    here = (F.col("topic") == topic) & (F.col("partition") == part)
                    outside = F.col("offset") >= offset if before else F.col("offset") < offset
                    cond &= ~(here & outside)
        return cond


def _key_compare(key: Key, strict: bool) -> Column:
    """(ts, topic, partition, offset) > key (strict) or >= key, lexicographically."""
    cols = [F.unix_micros("timestamp"), F.col("topic"), F.col("partition"), F.col("offset")]
    result = cols[-1] > key[-1] if strict else cols[-1] >= key[-1]
    for col, value in zip(reversed(cols[:-1]), reversed(key[:-1]), strict=True):
        result = (col > value) | ((col == value) & result)
    return result


def chunk_condition(boundaries: list[Key], index: int) -> Column:
    """The rows of chunk `index`: from its first key up to (not including) the next chunk's."""
    lower = boundaries[index]
    cond = _key_compare(lower, strict=False) & (F.unix_micros("timestamp") >= lower[0])
    if index + 1 < len(boundaries):
        upper = boundaries[index + 1]
        # The timestamp bounds let Delta skip the files of other chunks by their statistics.
        cond &= ~_key_compare(upper, strict=False) & (F.unix_micros("timestamp") <= upper[0])
    return cond


def chunk_boundaries(bronze: DataFrame, batch_records: int) -> tuple[list[Key], int]:
    """The first key of every chunk of N records in bronze order, and the number of records.

    Only the four key columns are sorted (in one partition: a window without a partition),
    never the values; the boundaries collected are one row per chunk.
    """
    keys = bronze.select(
        F.unix_micros("timestamp").alias("ts"), "topic", F.col("partition"), F.col("offset")
    ).withColumn("_rn", F.row_number().over(Window.orderBy(*KEY_COLUMNS)) - 1)
    rows = keys.where(F.col("_rn") % batch_records == 0).orderBy("_rn").collect()
    total_row = keys.agg(F.max("_rn")).first()
    total = 0 if total_row is None or total_row[0] is None else int(total_row[0]) + 1
    return [(int(r.ts), str(r.topic), int(r.partition), int(r.offset)) for r in rows], total


@dataclass
class ReplayState:
    """The replay's plan and progress, stored in the replay lake so a rerun resumes it."""

    app_id: str
    bronze_path: str
    bronze_version: int
    range: dict[str, Any]
    batch_records: int
    records: int
    boundaries: list[Key]
    done: int = 0
    gold_restored: bool = False

    @classmethod
    def load(cls, path: Path) -> ReplayState | None:
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        raw["boundaries"] = [tuple(b) for b in raw["boundaries"]]
        return cls(**raw)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n")
        tmp.replace(path)

    def same_request(self, bronze_path: str, rng: ReplayRange, batch_records: int) -> bool:
        return (self.bronze_path, self.range, self.batch_records) == (
            bronze_path,
            json.loads(json.dumps(rng.as_json())),
            batch_records,
        )


def progress_line(state: ReplayState, report: BatchReport, index: int, started: float, first: int) -> str:
    """One line per chunk: where the replay is and when it should end (from this run's pace)."""
    elapsed = time.monotonic() - started
    done_now = index + 1 - first
    remaining = len(state.boundaries) - index - 1
    eta = elapsed / done_now * remaining if done_now else 0.0
    return (
        f"replay chunk {index + 1}/{len(state.boundaries)}: records={report.records_in} "
        f"users={report.users_in} new={report.new_users} quarantined={report.quarantined} "
        f"elapsed={elapsed:.0f}s eta={eta:.0f}s"
    )


def plan(
    spark: SparkSession, job: JobSettings, state_path: Path, rng: ReplayRange, batch_records: int
) -> ReplayState:
    """The stored plan when the same replay is resumed; a new one (new app id) otherwise."""
    bronze_path = job.table("bronze")
    state = ReplayState.load(state_path)
    if state is not None:
        if not state.same_request(bronze_path, rng, batch_records):
            raise ReplayError(
                f"{state_path.parent} holds another replay ({state.range}, batch {state.batch_records} "
                f"of {state.bronze_path}): pass another --replay-lake, or delete that directory"
            )
        log.info("resuming replay %s at chunk %d/%d", state.app_id, state.done + 1, len(state.boundaries))
        return state
    if state_path.parent.exists() and any(state_path.parent.iterdir()):
        raise ReplayError(
            f"replay lake {state_path.parent} is not empty and holds no replay: a replay needs a fresh "
            "directory (never the live lake)"
        )
    try:
        version = delta.delta_version(spark, bronze_path)
    except Exception as exc:
        raise ReplayError(f"no bronze table to replay at {bronze_path}: {retry.one_line(exc)}") from None
    bronze = delta.read_delta(spark, bronze_path, version).where(rng.condition())
    boundaries, records = chunk_boundaries(bronze, batch_records)
    state = ReplayState(
        app_id=f"replay-{uuid.uuid4()}",
        bronze_path=bronze_path,
        bronze_version=version,
        range=json.loads(json.dumps(rng.as_json())),
        batch_records=batch_records,
        records=records,
        boundaries=boundaries,
    )
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state.save(state_path)
    log.info(
        "replay %s: %d records of bronze version %d in %d chunks of up to %d",
        state.app_id,
        records,
        version,
        len(boundaries),
        batch_records,
    )
    return state


def restore_live_gold(spark: SparkSession, live: JobSettings) -> None:
    """After a partial replay: the statistics of the whole live gold, not of the range alone.

    The replay lake's gold covers only the replayed range, and the chunks projected those
    partial values; the live gold (absolute values from the live silver) replaces them.
    """
    rows = delta.read_delta(spark, live.table(GOLD_TABLE))
    for write in gold_projections(rows, live):
        retry.with_retries("restore the statistics", write)
    log.info("restored the statistics from the live %s", live.table(GOLD_TABLE))


def run(
    spark: SparkSession, live: JobSettings, replay_lake: Path, rng: ReplayRange, batch_records: int
) -> ReplayState:
    """Replay every chunk not done yet; returns the final state."""
    if replay_lake.resolve() == live.lake_dir.resolve():
        raise ReplayError("the replay lake must not be the live lake (see docs/REPLAY.md)")
    state_path = replay_lake / STATE_FILE
    state = plan(spark, live, state_path, rng, batch_records)
    target = ReplayJobSettings.of(live, replay_lake)
    # Both paths of the live job, on each chunk: the serving stores, then the lake and statistics.
    serving = ServingProcessor(spark, target, state.app_id)
    lake = LakeProcessor(spark, target, state.app_id, write_bronze=False)
    bronze = delta.read_delta(spark, state.bronze_path, state.bronze_version).where(rng.condition())
    started, first = time.monotonic(), state.done
    for index in range(state.done, len(state.boundaries)):
        chunk = bronze.where(chunk_condition(state.boundaries, index))
        pseudonym = target.common.pseudonym
        serving.process(pipeline.serving_rows(chunk, pseudonym.key, pseudonym.key_version), index)
        report = lake.process(chunk, index)
        state.done = index + 1
        state.save(state_path)
        log.info(progress_line(state, report, index, started, first))
    if not rng.is_everything and not state.gold_restored:
        restore_live_gold(spark, live)
        state.gold_restored = True
        state.save(state_path)
    log.info("replay %s complete: %d records in %d chunks", state.app_id, state.records, state.done)
    return state


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--from-time", help="first Kafka timestamp (or fetched_at) to replay, ISO-8601")
    parser.add_argument("--to-time", help="end of the time range (excluded), ISO-8601")
    parser.add_argument(
        "--time-field", choices=TIME_FIELDS, default="kafka", help="what the time range applies to"
    )
    parser.add_argument("--from-offsets", help='first offsets replayed, {"topic": {"0": 42}}')
    parser.add_argument("--to-offsets", help="end offsets (excluded), same form")
    parser.add_argument("--batch-records", type=int, default=2000, help="Kafka records per chunk")
    parser.add_argument(
        "--replay-lake",
        help="fresh directory for the replay's silver and gold (default: $REPLAY_LAKE_DIR or <lake>_replay)",
    )
    parser.add_argument("--skip-preflight", action="store_true", help="do not check the servers first")
    return parser.parse_args(argv)


def request(args: argparse.Namespace, live: JobSettings) -> tuple[ReplayRange, Path]:
    """The validated range and replay lake of the command line."""
    if args.batch_records < 1:
        raise ReplayError("--batch-records must be at least 1")
    rng = ReplayRange(
        from_time=parse_time(args.from_time) if args.from_time else None,
        to_time=parse_time(args.to_time) if args.to_time else None,
        time_field=args.time_field,
        from_offsets=parse_offsets(args.from_offsets) if args.from_offsets else None,
        to_offsets=parse_offsets(args.to_offsets) if args.to_offsets else None,
    )
    if rng.from_time and rng.to_time and rng.from_time >= rng.to_time:
        raise ReplayError("--from-time must be before --to-time")
    chosen = args.replay_lake or live.replay_lake_dir or f"{live.lake_dir}_replay"
    lake = Path(chosen)
    return rng, lake if lake.is_absolute() else live.common.stack.root / lake


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        live = job_settings.load()
        rng, replay_lake = request(args, live)
        if not args.skip_preflight:
            preflight.run(live.common)
    except (SettingsError, ReplayError, preflight.PreflightError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    spark = spark_session(live, APP_NAME)
    spark.sparkContext.setLogLevel("WARN")
    try:
        run(spark, live, replay_lake, rng, args.batch_records)
    except ReplayError as exc:
        log.error("cannot replay: %s", exc)
        return 2
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
