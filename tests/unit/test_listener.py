"""jobs.listener: a Spark progress event (its JSON, as Spark 3.5 writes it) becomes one row."""

from __future__ import annotations

import datetime as dt
import json

from jobs.listener import end_offsets, progress_row, ran_a_batch
from jobs.pipeline import BatchReport

PROGRESS = {
    "id": "fafbbf0a-cbfd-4a9a-81a5-4e6c259388a6",
    "runId": "3ecd04d7-d679-4138-8b46-d70972b00f4a",
    "name": "stream_users",
    "timestamp": "2026-03-01T23:59:59.250Z",
    "batchId": 7,
    "batchDuration": 3571,
    "numInputRows": 40,
    "inputRowsPerSecond": 3.9,
    "processedRowsPerSecond": 11.2,
    "durationMs": {
        "addBatch": 3300,
        "commitOffsets": 60,
        "getBatch": 0,
        "latestOffset": 12,
        "queryPlanning": 90,
        "triggerExecution": 3571,
        "walCommit": 80,
    },
    "stateOperators": [],
    "sources": [
        {
            "description": "KafkaV2[Subscribe[random_user_data]]",
            "startOffset": {"random_user_data": {"2": 117, "1": 116, "0": 117}},
            "endOffset": {"random_user_data": {"2": 131, "1": 129, "0": 130}},
            "latestOffset": {"random_user_data": {"2": 131, "1": 129, "0": 130}},
            "numInputRows": 40,
            "inputRowsPerSecond": 3.9,
            "processedRowsPerSecond": 11.2,
            "metrics": {"avgOffsetsBehindLatest": "0.0", "maxOffsetsBehindLatest": "0"},
        }
    ],
    "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
}


def test_a_batch_with_its_report_becomes_one_row() -> None:
    report = BatchReport(7, records_in=40, users_in=400, valid=399, quarantined=1)
    report.durations_ms.update(bronze=400, silver=900, total=3200)
    at = dt.datetime(2026, 3, 1, 23, 59, 59, 250000, tzinfo=dt.UTC)
    assert progress_row(PROGRESS, report) == {
        "day": dt.date(2026, 3, 1),
        "batch_time": at,
        "query_name": "stream_users",
        "batch_id": 7,
        "input_rows": 40,
        "input_rows_per_second": 3.9,
        "processed_rows_per_second": 11.2,
        "trigger_ms": 3571,
        "durations_ms": {
            "addBatch": 3300,
            "commitOffsets": 60,
            "getBatch": 0,
            "latestOffset": 12,
            "queryPlanning": 90,
            "triggerExecution": 3571,
            "walCommit": 80,
            "sink:bronze": 400,
            "sink:silver": 900,
            "sink:total": 3200,
        },
        "quarantined": 1,
        "end_offsets": '{"random_user_data": {"0": 130, "1": 129, "2": 131}}',
    }


def test_without_a_report_quarantined_is_unknown_and_missing_rates_stay_missing() -> None:
    progress = {k: v for k, v in PROGRESS.items() if k != "inputRowsPerSecond"}
    row = progress_row(progress, None)
    assert (row["quarantined"], row["input_rows_per_second"]) == (None, None)
    assert not any(k.startswith("sink:") for k in row["durations_ms"])


def test_idle_triggers_are_not_batches() -> None:
    idle = {**PROGRESS, "numInputRows": 0, "durationMs": {"latestOffset": 3, "triggerExecution": 3}}
    assert not ran_a_batch(idle)
    assert ran_a_batch(PROGRESS)
    # An empty batch that did run (e.g. only a watermark moved) is still a batch.
    assert ran_a_batch({**PROGRESS, "numInputRows": 0})


def test_end_offsets_of_several_sources_and_string_offsets() -> None:
    progress = {
        "sources": [
            {"endOffset": {"a": {"0": 1}}},
            {"endOffset": json.dumps({"b": {"1": 2}})},
            {"description": "RateSource", "endOffset": "5"},
        ]
    }
    assert json.loads(end_offsets(progress)) == {"a": {"0": 1}, "b": {"1": 2}}
