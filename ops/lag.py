"""Kafka lag of the streaming job: its checkpoint's committed offsets against the topic's end.

Spark's Kafka source never commits offsets to a consumer group (the checkpoint is the only
truth, which is what makes the job exactly-once), so `kafka-consumer-groups` shows nothing
useful. This reads the checkpoint the way Spark does:

- `offsets/<N>` is written before batch N runs: a version line (`v1`), a metadata JSON
  line, then one line per source: the offsets batch N reads *up to* (exclusive), e.g.
  `{"random_user_data":{"0":42,"1":40,"2":41}}`, or `-` for a source without offsets;
- `commits/<N>` is written once batch N has been processed and its sinks committed.

So the job has processed everything below `offsets/<latest N with a commit>`. A batch in
flight (offsets without commit) is not processed yet: after a crash it is redone.

    python -m ops.lag [--query serving|lake | --checkpoint DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError

from common import job_settings
from common.settings import KafkaSettings, Settings, SettingsError, load
from ops.kafka_admin import CHECK_TIMEOUT_MS, admin_client, topic_state

APP_NAME = "stream_users"  # jobs/stream_users.py APP_NAME (the Spark application)
# The job's two queries (common/job_settings.py SERVING, LAKE), each with its checkpoint folder.
QUERIES = (job_settings.SERVING, job_settings.LAKE)
SUPPORTED_VERSION = 1


class CheckpointError(ValueError):
    """The checkpoint is missing or not in a format this reader knows (the message says which)."""


@dataclass(frozen=True)
class Committed:
    """What the job has finished: the latest committed batch and the offsets it read up to."""

    batch_id: int
    offsets: dict[int, int]  # partition -> next offset to read
    in_flight: int | None  # a batch id with offsets but no commit yet (running or crashed)


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    end: int
    committed: int | None  # None: the job has not read this partition yet
    lag: int


@dataclass(frozen=True)
class LagReport:
    topic: str
    checkpoint: str
    batch_id: int | None
    in_flight: int | None
    partitions: list[PartitionLag]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["total"] = self.total
        return out


def _batch_ids(folder: Path) -> list[int]:
    # Spark also leaves hidden `.N.crc` and `.N.<uuid>.tmp` files there: only plain numbers count.
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def read_offset_file(path: Path) -> list[dict[str, dict[int, int]] | None]:
    """The per-source offsets of one `offsets/<N>` file, in source order (None for `-`)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("v"):
        raise CheckpointError(f"{path}: no version line")
    try:
        version = int(lines[0][1:])
    except ValueError:
        raise CheckpointError(f"{path}: bad version line {lines[0]!r}") from None
    if version > SUPPORTED_VERSION:
        raise CheckpointError(f"{path}: offset log version {version} is newer than this reader ({lines[0]})")
    if len(lines) < 2:
        raise CheckpointError(f"{path}: metadata line missing")
    sources: list[dict[str, dict[int, int]] | None] = []
    for line in lines[2:]:
        if line.strip() in {"", "-"}:
            sources.append(None)
            continue
        try:
            raw = json.loads(line)
            sources.append(
                {topic: {int(p): int(o) for p, o in parts.items()} for topic, parts in raw.items()}
            )
        except (ValueError, AttributeError, TypeError) as exc:
            raise CheckpointError(f"{path}: source line is not Kafka offsets JSON: {line[:200]!r}") from exc
    return sources


def committed(checkpoint: Path, topic: str) -> Committed | None:
    """The offsets of the latest committed batch for `topic`; None before the first commit."""
    if not checkpoint.is_dir():
        raise CheckpointError(
            f"no checkpoint at {checkpoint} (has the job ever run with this CHECKPOINT_DIR?)"
        )
    offsets = _batch_ids(checkpoint / "offsets")
    commits = set(_batch_ids(checkpoint / "commits"))
    done = [b for b in offsets if b in commits]
    in_flight = offsets[-1] if offsets and offsets[-1] not in commits else None
    if not done:
        return None
    batch = done[-1]
    for source in read_offset_file(checkpoint / "offsets" / str(batch)):
        if source is not None and topic in source:
            return Committed(batch, source[topic], in_flight)
    raise CheckpointError(f"{checkpoint}/offsets/{batch} has no offsets of topic {topic!r}")


def end_offsets(k: KafkaSettings, topic: str | None = None) -> dict[int, int]:
    """The next offset of every partition of the topic (what a producer would write next)."""
    name = topic or k.topic
    with admin_client(k, CHECK_TIMEOUT_MS) as admin:
        state = topic_state(admin, name)
        if state is None:
            raise KafkaError(f"topic {name} does not exist")
        specs = {TopicPartition(name, p): OffsetSpec.LATEST for p in range(state.partitions)}
        result = admin.list_partition_offsets(specs)
    return {tp.partition: int(o.offset) for tp, o in sorted(result.items())}


def compute(topic: str, checkpoint: Path, state: Committed | None, ends: dict[int, int]) -> LagReport:
    """Per-partition lag. A partition the checkpoint does not know yet (none committed, or one
    added later) lags by its whole end offset: an upper bound when retention already dropped
    its start, exact for a topic that kept everything."""
    offsets = state.offsets if state else {}
    parts = []
    for partition, end in sorted(ends.items()):
        done = offsets.get(partition)
        parts.append(PartitionLag(partition, end, done, max(0, end - (done or 0))))
    return LagReport(
        topic=topic,
        checkpoint=str(checkpoint),
        batch_id=state.batch_id if state else None,
        in_flight=state.in_flight if state else None,
        partitions=parts,
    )


def lag(k: KafkaSettings, checkpoint: Path, topic: str | None = None) -> LagReport:
    name = topic or k.topic
    ends = end_offsets(k, name)  # first: a broker that is down matters more than the checkpoint
    return compute(name, checkpoint, committed(checkpoint, name), ends)


def default_checkpoint(settings: Settings, query: str = job_settings.SERVING) -> Path:
    """A query's checkpoint under CHECKPOINT_DIR (common.job_settings imports no Spark)."""
    return job_settings.from_settings(settings).checkpoint(query)


def render(report: LagReport) -> str:
    head = (
        f"topic {report.topic}, checkpoint {report.checkpoint}: "
        + (f"committed batch {report.batch_id}" if report.batch_id is not None else "no committed batch")
        + (f", batch {report.in_flight} in flight" if report.in_flight is not None else "")
    )
    lines = [head, "  partition        end  committed        lag"]
    for p in report.partitions:
        done = "-" if p.committed is None else str(p.committed)
        lines.append(f"  {p.partition:>9} {p.end:>10} {done:>10} {p.lag:>10}")
    lines.append(f"  {'total':>9} {'':>10} {'':>10} {report.total:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.lag", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a query's checkpoint (default: --query's)")
    parser.add_argument(
        "--query", choices=QUERIES, default=job_settings.SERVING, help="which query of the job"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)  # "credentials in the clear" on every login
    try:
        settings = load()
        report = lag(settings.kafka, args.checkpoint or default_checkpoint(settings, args.query))
    except (SettingsError, CheckpointError, KafkaError, OSError) as exc:
        print(f"lag failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
