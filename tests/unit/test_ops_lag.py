"""The checkpoint reader of ops.lag on hand-written checkpoints in Spark's exact format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops import lag

META = (
    '{"batchWatermarkMs":0,"batchTimestampMs":1764286800123,"conf":{"spark.sql.shuffle.partitions":"4",'
    '"spark.sql.streaming.stateStore.providerClass":'
    '"org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"}}'
)


def write_batch(checkpoint: Path, batch: int, sources: list[str], commit: bool) -> None:
    """offsets/<batch> (and commits/<batch>) exactly as Spark 3.5's HDFSMetadataLog writes them."""
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    (checkpoint / "offsets" / str(batch)).write_text("\n".join(["v1", META, *sources]))
    (checkpoint / "offsets" / f".{batch}.crc").write_bytes(b"crc")
    if commit:
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def offsets(topic: str, parts: dict[int, int]) -> str:
    return json.dumps({topic: {str(p): o for p, o in sorted(parts.items(), reverse=True)}})


def test_latest_committed_batch_wins_and_the_batch_in_flight_is_reported(tmp_path: Path) -> None:
    write_batch(tmp_path, 0, [offsets("t", {0: 0, 1: 0})], commit=True)
    write_batch(tmp_path, 1, [offsets("t", {0: 5, 1: 3})], commit=True)
    write_batch(tmp_path, 2, [offsets("t", {0: 9, 1: 3})], commit=False)
    assert lag.committed(tmp_path, "t") == lag.Committed(1, {0: 5, 1: 3}, in_flight=2)


def test_lag_per_partition_including_a_partition_the_checkpoint_does_not_know(tmp_path: Path) -> None:
    write_batch(tmp_path, 0, [offsets("t", {0: 5, 1: 3})], commit=True)
    report = lag.compute("t", tmp_path, lag.committed(tmp_path, "t"), {0: 8, 1: 3, 2: 4})
    assert report.partitions == [
        lag.PartitionLag(0, 8, 5, 3),
        lag.PartitionLag(1, 3, 3, 0),
        lag.PartitionLag(2, 4, None, 4),
    ]
    assert report.total == 7
    assert report.as_dict()["total"] == 7


def test_no_commit_yet_means_everything_is_lag(tmp_path: Path) -> None:
    write_batch(tmp_path, 0, [offsets("t", {0: 0})], commit=False)
    state = lag.committed(tmp_path, "t")
    assert state is None
    assert lag.compute("t", tmp_path, state, {0: 6}).partitions == [lag.PartitionLag(0, 6, None, 6)]


def test_sources_without_offsets_and_other_topics_are_skipped(tmp_path: Path) -> None:
    write_batch(tmp_path, 0, ["-", offsets("other", {0: 1}), offsets("t", {0: 2})], commit=True)
    assert lag.committed(tmp_path, "t") == lag.Committed(0, {0: 2}, None)


def test_unknown_formats_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(lag.CheckpointError, match="no checkpoint"):
        lag.committed(tmp_path / "missing", "t")
    write_batch(tmp_path, 0, [offsets("t", {0: 2})], commit=True)
    (tmp_path / "offsets" / "0").write_text("v2\n{}\n{}")
    with pytest.raises(lag.CheckpointError, match="version 2 is newer"):
        lag.committed(tmp_path, "t")
    (tmp_path / "offsets" / "0").write_text("v1\n{}\nnot json")
    with pytest.raises(lag.CheckpointError, match="not Kafka offsets JSON"):
        lag.committed(tmp_path, "t")
    (tmp_path / "offsets" / "0").write_text("v1\n{}\n" + offsets("u", {0: 1}))
    with pytest.raises(lag.CheckpointError, match="no offsets of topic 't'"):
        lag.committed(tmp_path, "t")
