"""The replay's plan: ranges, chunk boundaries and the chunks they cut (jobs/replay_bronze.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, cast

import pytest
from pyspark.sql import DataFrame, SparkSession

from common.job_settings import JobSettings, QuerySettings
from jobs import replay_bronze as rb
from jobs.core.erasure import LEDGER_TABLE
from tests.unit.bronze_rows import TOPIC, bronze_df, encode, envelope

T0 = dt.datetime(2026, 11, 27, 23, 0, 0)


def row(
    partition: int, offset: int, seconds: int, fetched_at: str = "2026-11-27T23:40:00.123Z"
) -> tuple[Any, ...]:
    value = encode(envelope([], batch_id=f"b-{partition}-{offset}", fetched_at=fetched_at))
    return (None, value, TOPIC, partition, offset, T0 + dt.timedelta(seconds=seconds), 0, [])


# Two partitions, timestamps with ties (the order is then topic, partition, offset).
ROWS = [row(0, 0, 0), row(1, 0, 0), row(0, 1, 5), row(1, 1, 3), row(1, 2, 5), row(0, 2, 9), row(1, 3, 9)]
ORDER = [(0, 0), (1, 0), (1, 1), (0, 1), (1, 2), (0, 2), (1, 3)]


@pytest.fixture(scope="module")
def bronze(spark: SparkSession) -> DataFrame:
    return bronze_df(spark, ROWS).cache()


def ids(df: DataFrame) -> list[tuple[int, int]]:
    return sorted((r.partition, r.offset) for r in df.select("partition", "offset").collect())


def test_chunks_are_consecutive_slices_of_bronze_order_and_cover_every_record_once(bronze: DataFrame) -> None:
    boundaries, total = rb.chunk_boundaries(bronze, 3)
    assert total == 7
    micros = [
        int((T0 + dt.timedelta(seconds=s) - dt.datetime(1970, 1, 1)).total_seconds() * 1e6) for s in (0, 5, 9)
    ]
    assert boundaries == [(micros[0], TOPIC, 0, 0), (micros[1], TOPIC, 0, 1), (micros[2], TOPIC, 1, 3)]
    chunks = [ids(bronze.where(rb.chunk_condition(boundaries, i))) for i in range(len(boundaries))]
    assert chunks == [sorted(ORDER[0:3]), sorted(ORDER[3:6]), sorted(ORDER[6:7])]


def test_an_empty_bronze_has_no_chunks(bronze: DataFrame) -> None:
    assert rb.chunk_boundaries(bronze.limit(0), 2) == ([], 0)


def test_time_and_offset_ranges_select_half_open_intervals(bronze: DataFrame) -> None:
    utc = dt.UTC
    by_time = rb.ReplayRange(
        from_time=(T0 + dt.timedelta(seconds=3)).replace(tzinfo=utc),
        to_time=(T0 + dt.timedelta(seconds=9)).replace(tzinfo=utc),
    )
    assert ids(bronze.where(by_time.condition())) == [(0, 1), (1, 1), (1, 2)]
    by_offsets = rb.ReplayRange(
        from_offsets=rb.parse_offsets(json.dumps({TOPIC: {"1": 1}})),
        to_offsets=rb.parse_offsets(json.dumps({TOPIC: {"1": 3, "0": 2}})),
    )
    assert ids(bronze.where(by_offsets.condition())) == [(0, 0), (0, 1), (1, 1), (1, 2)]
    assert rb.ReplayRange().is_everything and not by_time.is_everything


def test_a_time_range_can_apply_to_the_producers_fetched_at(spark: SparkSession) -> None:
    rows = [
        row(0, 0, 0, "2026-11-27T10:00:00Z"),
        row(0, 1, 0, "2026-11-28T10:00:00Z"),
        row(0, 2, 0, "garbage"),
    ]
    rng = rb.ReplayRange(from_time=rb.parse_time("2026-11-28T00:00:00Z"), time_field="fetched_at")
    assert ids(bronze_df(spark, rows).where(rng.condition())) == [(0, 1)]


def test_command_line_values_are_validated_with_one_line_errors() -> None:
    assert rb.parse_time("2026-11-27T23:00:00") == dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC)
    assert rb.parse_offsets('{"t": {"0": 5, "2": 0}}') == {"t": {0: 5, 2: 0}}
    with pytest.raises(rb.ReplayError, match="ISO-8601"):
        rb.parse_time("yesterday")
    for bad in ("{", "[]", '{"t": {}}', '{"t": {"0": -2}}', '{"t": {"x": 1}}', '{"t": {"0": "1"}}'):
        with pytest.raises(rb.ReplayError):
            rb.parse_offsets(bad)


def test_a_stored_plan_is_resumed_only_for_the_same_request(tmp_path: Path) -> None:
    rng = rb.ReplayRange(from_time=rb.parse_time("2026-11-27T00:00:00Z"))
    state = rb.ReplayState(
        app_id="replay-x",
        bronze_path="/lake/bronze",
        bronze_version=3,
        range=json.loads(json.dumps(rng.as_json())),
        batch_records=2,
        records=3,
        boundaries=[(1, TOPIC, 0, 0), (2, TOPIC, 0, 2)],
        done=1,
    )
    path = tmp_path / rb.STATE_FILE
    state.save(path)
    loaded = rb.ReplayState.load(path)
    assert loaded is not None
    assert loaded == state
    assert loaded.same_request("/lake/bronze", rng, 2)
    assert not loaded.same_request("/lake/bronze", rng, 3)
    assert not loaded.same_request("/lake/bronze", rb.ReplayRange(), 2)


def test_the_replay_writes_its_own_lake_but_reads_bronze_and_the_erasure_ledger_of_the_live_one() -> None:
    live = JobSettings(
        common=cast(Any, None),
        lake_dir=Path("/data/lake"),
        checkpoint_dir=Path("/data/checkpoints"),
        starting_offsets="latest",
        fail_on_data_loss=True,
        serving=QuerySettings("serving", "500 milliseconds", 500),
        lake=QuerySettings("lake", "30 seconds", 5000),
        ui_port=4040,
        cassandra_write_consistency="LOCAL_QUORUM",
    )
    replay = rb.ReplayJobSettings.of(live, Path("/data/lake_replay"))
    assert {name: replay.table(name) for name in ("bronze", LEDGER_TABLE, "silver_users", "quarantine")} == {
        "bronze": "/data/lake/bronze",
        LEDGER_TABLE: "/data/lake/erasure_ledger",
        "silver_users": "/data/lake_replay/silver_users",
        "quarantine": "/data/lake_replay/quarantine",
    }
    assert replay.checkpoint_dir == live.checkpoint_dir and replay.lake_dir == Path("/data/lake_replay")
