"""Each micro-batch's progress into Cassandra `pipeline_metrics` and the log.

Spark reports a batch's progress (rows, rates, durations, Kafka end offsets) only to
listeners and the UI; both vanish with the driver. Writing it to a table gives the status
command, the monitor and the dashboard a history that survives restarts. The pipeline's own
per-sink durations and quarantine count arrive through the processors' `on_report` hook (jobs/pipeline.py)
and are merged into the row of the same batch id.

A failure here is logged and never stops the query: metrics must not cost data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster, Session
from cassandra.query import UNSET_VALUE, PreparedStatement
from pyspark.sql.streaming import StreamingQueryListener

from common.clients import cassandra_cluster
from common.job_settings import JobSettings
from contract import tables
from jobs.pipeline import BatchReport

log = logging.getLogger(__name__)

COLUMNS = tables.columns("pipeline_metrics")
INSERT = (
    f"INSERT INTO pipeline_metrics ({', '.join(COLUMNS)}) "  # noqa: S608 (constant column names)
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)
# Reports waiting for their progress event (normally one; bounded if events are lost).
MAX_PENDING_REPORTS = 100


def _timestamp(text: str) -> dt.datetime:
    # Spark writes e.g. "2026-03-01T00:00:00.123Z" (UTC).
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def source_offsets(source: dict[str, Any], which: str) -> dict[str, Any] | None:
    """One source's offsets in a progress report (`which`: endOffset, latestOffset) as
    {"topic": {"partition": offset}}; None when it has none."""
    value = source.get(which)
    if isinstance(value, str):  # some sources give a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            value = {source.get("description", "source"): value}
    return value if isinstance(value, dict) else None


def end_offsets(progress: dict[str, Any]) -> str:
    """The end offsets of every source as one JSON object: {"topic": {"partition": offset}}."""
    merged: dict[str, Any] = {}
    for source in progress.get("sources") or []:
        merged.update(source_offsets(source, "endOffset") or {})
    return json.dumps(merged, sort_keys=True)


def caught_up(progress: dict[str, Any] | None) -> bool:
    """A query's progress report says it read all there was when its batch was planned:
    every source's end offsets are its latest offsets (a batch capped by
    maxOffsetsPerTrigger ends before them). None (no batch yet): False."""
    sources = (progress or {}).get("sources") or []
    return bool(sources) and all(
        (latest := source_offsets(source, "latestOffset")) is not None
        and source_offsets(source, "endOffset") == latest
        for source in sources
    )


def progress_row(progress: dict[str, Any], report: BatchReport | None) -> dict[str, Any]:
    """One pipeline_metrics row from a progress event (Spark's JSON) and the batch's report."""
    at = _timestamp(progress["timestamp"])
    durations = {k: int(v) for k, v in (progress.get("durationMs") or {}).items()}
    if report is not None:
        durations.update({f"sink:{k}": int(v) for k, v in report.durations_ms.items()})
    return {
        "day": at.date(),
        "batch_time": at,
        "query_name": progress.get("name") or "unnamed",
        "batch_id": int(progress["batchId"]),
        "input_rows": int(progress.get("numInputRows") or 0),
        # Spark leaves a rate out when it is not a number (e.g. the first batch).
        "input_rows_per_second": progress.get("inputRowsPerSecond"),
        "processed_rows_per_second": progress.get("processedRowsPerSecond"),
        "trigger_ms": durations.get("triggerExecution"),
        "durations_ms": durations,
        "quarantined": report.quarantined if report is not None else None,
        "end_offsets": end_offsets(progress),
    }


def metrics_cluster(job: JobSettings) -> Cluster:
    """The writer's connection for pipeline_metrics, from the project's one Cassandra client builder
    (so CASSANDRA_SSL and its CA apply here exactly as to every other client)."""
    c = job.common.cassandra
    return cassandra_cluster(c, c.writer, request_timeout=30)


def ran_a_batch(progress: dict[str, Any]) -> bool:
    """Idle triggers (no new data) also report progress; they carry no batch to record."""
    return "addBatch" in (progress.get("durationMs") or {}) or bool(progress.get("numInputRows"))


class MetricsListener(StreamingQueryListener):
    """Register with spark.streams.addListener and pass `on_report` to the serving and lake processors."""

    def __init__(self, job: JobSettings) -> None:
        self.job = job
        self._lock = threading.Lock()
        # Keyed by (query name, batch id): the serving and lake queries count batches apart.
        self._reports: dict[tuple[str, int], BatchReport] = {}
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._insert: PreparedStatement | None = None

    # --- hooks -----------------------------------------------------------------------------

    def on_report(self, report: BatchReport) -> None:
        with self._lock:
            self._reports[(report.query, report.batch_id)] = report
            while len(self._reports) > MAX_PENDING_REPORTS:
                self._reports.pop(min(self._reports))

    def onQueryStarted(self, event: Any) -> None:
        log.info("query %s started (id %s, run %s)", event.name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        try:
            progress = json.loads(event.progress.json)
            if not ran_a_batch(progress):
                return
            with self._lock:
                name = str(progress.get("name") or "unnamed")
                report = self._reports.pop((name, int(progress["batchId"])), None)
            row = progress_row(progress, report)
            log.info(
                "progress %s batch %d: %d rows, %.1f rows/s in, %.1f rows/s processed, trigger %s ms, "
                "quarantined %s, end offsets %s",
                row["query_name"],
                row["batch_id"],
                row["input_rows"],
                row["input_rows_per_second"] or 0.0,
                row["processed_rows_per_second"] or 0.0,
                row["trigger_ms"],
                row["quarantined"],
                row["end_offsets"],
            )
            self.write(row)
        except Exception:  # never let metrics stop the query
            log.warning("could not record a progress event", exc_info=True)
            self.close()  # reconnect on the next event

    def onQueryIdle(self, event: Any) -> None:  # Spark 3.5+: idle triggers
        pass

    def onQueryTerminated(self, event: Any) -> None:
        log.info("query %s terminated%s", event.id, f": {event.exception}" if event.exception else "")
        self.close()

    # --- Cassandra ---------------------------------------------------------------------------

    def _connect(self) -> tuple[Session, PreparedStatement]:
        if self._session is None or self._insert is None:
            self._cluster = metrics_cluster(self.job)
            self._session = self._cluster.connect(self.job.common.cassandra.keyspace)
            self._insert = self._session.prepare(INSERT)
            self._insert.consistency_level = ConsistencyLevel.name_to_value[
                self.job.cassandra_write_consistency
            ]
        return self._session, self._insert

    def write(self, row: dict[str, Any]) -> None:
        session, insert = self._connect()
        # Unset rather than null: a null would write a tombstone for every missing rate.
        session.execute(insert, [UNSET_VALUE if row[c] is None else row[c] for c in COLUMNS])

    def close(self) -> None:
        cluster, self._cluster, self._session, self._insert = self._cluster, None, None, None
        if cluster is not None:
            cluster.shutdown()
