"""Every read and write of the Spark jobs, in one place.

Each write here is idempotent, so a micro-batch that runs twice (after a crash or a
SIGKILL between two sinks) changes nothing the second time:
- Delta appends carry `txnAppId`/`txnVersion`; Delta MERGEs run under the session's
  `spark.databricks.delta.write.txnAppId`/`txnVersion`: Delta skips a version it already has.
- MongoDB: insert by a deterministic `_id`; a rerun that meets its own documents
  inserts only the missing ones (the others are identical).
- Cassandra: plain INSERTs (upserts) on deterministic primary keys; no counters.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import tenacity
from bson.int64 import Int64
from delta.tables import DeltaTable
from pymongo import MongoClient
from pymongo.errors import BulkWriteError
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructType, TimestampType

from common.settings import Account, JvmTruststore, Settings, SettingsError
from jobs.settings import JobSettings, QuerySettings

log = logging.getLogger(__name__)
T = TypeVar("T")

CASSANDRA_FORMAT = "org.apache.spark.sql.cassandra"


def spark_session(job: JobSettings, app_name: str) -> SparkSession:
    """The job's session: connector settings from the typed settings (redacted in the UI)."""
    s = job.common
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.port", str(job.ui_port))
        .config("spark.cassandra.output.consistency.level", job.cassandra_write_consistency)
        .config("spark.mongodb.write.connection.uri", s.mongo.uri(s.mongo.writer, jvm=True))
        .config("spark.mongodb.read.connection.uri", s.mongo.uri(s.mongo.writer, jvm=True))
    )
    for key, value in cassandra_conf(s, s.cassandra.writer).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if s.mongo.tls and s.mongo.jvm_truststore is not None:
        install_jvm_trust(spark, s.mongo.jvm_truststore)
    return spark


def cassandra_conf(settings: Settings, account: Account) -> dict[str, str]:
    """The Cassandra connector's connection settings (session conf, or options of one read/write)."""
    c = settings.cassandra
    conf = {
        "spark.cassandra.connection.host": ",".join(c.hosts),
        "spark.cassandra.connection.port": str(c.port),
        "spark.cassandra.connection.localDC": c.local_dc,
        "spark.cassandra.auth.username": account.user,
        "spark.cassandra.auth.password": account.password.get_secret_value(),
    }
    if c.ssl:
        if c.jvm_truststore is None:
            raise SettingsError("CASSANDRA_SSL=true needs JVM_TRUSTSTORE for the Spark connector")
        conf.update(
            {
                "spark.cassandra.connection.ssl.enabled": "true",
                "spark.cassandra.connection.ssl.trustStore.path": str(c.jvm_truststore.path),
                "spark.cassandra.connection.ssl.trustStore.password": c.jvm_truststore.password(),
                "spark.cassandra.connection.ssl.trustStore.type": "PKCS12",
            }
        )
    return conf


def install_jvm_trust(spark: SparkSession, truststore: JvmTruststore) -> None:
    """Make the trust store the JVM's default TLS context (MONGO_TLS).

    The MongoDB Java driver under the Spark connector has no CA-file option: it uses the JVM's
    default SSLContext. Set here, in the running driver JVM, it needs no password on a command
    line and works even when something (Ivy) already initialised the default. Local mode runs
    the executors in this JVM; on a cluster give the executors
    -Djavax.net.ssl.trustStore=... in spark.executor.extraJavaOptions (docs/STACK.md).
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    password = truststore.password()
    # A char[] built inside the JVM (py4j turns every returned String into a Python str).
    chars = jvm.java.nio.CharBuffer.allocate(len(password)).put(password).array()
    keystore = jvm.java.security.KeyStore.getInstance("PKCS12")
    stream = jvm.java.io.FileInputStream(str(truststore.path))
    try:
        keystore.load(stream, chars)
    finally:
        stream.close()
    factory = jvm.javax.net.ssl.TrustManagerFactory.getInstance(
        jvm.javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm()
    )
    factory.init(keystore)
    context = jvm.javax.net.ssl.SSLContext.getInstance("TLS")
    context.init(None, factory.getTrustManagers(), None)
    jvm.javax.net.ssl.SSLContext.setDefault(context)


def app_id_for(checkpoint: Path) -> str:
    """The Delta transaction app id of a query, created together with its checkpoint.

    A fresh checkpoint restarts batch ids at 0: with an old app id Delta would skip those
    writes as "already done". So a checkpoint without committed offsets gets a new id,
    stored beside it; an existing checkpoint must have its id, or we refuse to guess.
    """
    marker = checkpoint.parent / f"{checkpoint.name}.app_id"
    offsets = checkpoint / "offsets"
    fresh = not offsets.is_dir() or not any(offsets.iterdir())
    if fresh:
        app_id = f"{checkpoint.name}-{uuid.uuid4()}"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(app_id + "\n")
        tmp.replace(marker)
        log.info("new checkpoint %s: Delta app id %s", checkpoint, app_id)
        return app_id
    if not marker.is_file():
        raise SettingsError(
            f"checkpoint {checkpoint} exists but its app id file {marker} is missing: restore it, "
            "or delete the checkpoint to start over"
        )
    return marker.read_text().strip()


def one_line(exc: BaseException) -> str:
    """The first meaningful line of a (possibly Java) exception: for logs, not stack walls."""
    text = str(exc).strip()
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("at ", "Traceback", "File ")):
            return f"{type(exc).__name__}: {line[:300]}"
    return type(exc).__name__


STALL_EXIT_CODE = 3


def exit_on_stall(name: str, seconds: float) -> None:
    """Crash-only recovery from a hung sink: exit, let the supervisor restart the job.

    Some client calls have no timeout of their own (the Cassandra driver's schema refresh
    waits forever on a connection lost while a server restarted: apache/cassandra-java-driver
    JAVA-2546, scylladb/java-driver#343). The batch was not committed, so the restarted job
    runs it again, idempotently.
    """
    log.error(
        "sink %s stalled for %.0fs (hung client call): exiting with %d so the supervisor restarts the job",
        name,
        seconds,
        STALL_EXIT_CODE,
    )
    logging.shutdown()
    os._exit(STALL_EXIT_CODE)


@contextmanager
def stall_guard(name: str, timeout: float | None, on_stall: Callable[[str, float], None]) -> Iterator[None]:
    """Call `on_stall(name, timeout)` if the block neither returns nor fails within `timeout` s."""
    if not timeout:
        yield
        return
    timer = threading.Timer(timeout, on_stall, (name, timeout))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def with_retries(
    name: str,
    action: Callable[[], T],
    *,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    stall_timeout: float | None = None,
    on_stall: Callable[[str, float], None] = exit_on_stall,
    failure_probe: FailureProbe | None = None,
) -> T:
    """Run a sink write until it succeeds: a sink that is down stalls the stream, never skips data.

    A failing attempt is retried by tenacity, without end, after base_delay, 2x, 4x, ...
    capped at max_delay (no jitter: the job is the servers' one writer, waiting for them to
    come back, not contending with other clients); an attempt that neither fails nor returns
    within `stall_timeout` seconds calls `on_stall` (by default: exit for a restart).
    With a failure probe (`failure_probe`, else the one the job installed: see
    install_failure_probe), a write that fails the same way FailureProbe.after times in a
    row while every server answers is not retried further: its error is raised, for the
    batch to be counted as failed (jobs/poison_batches.py). Servers that are down are
    retried without end, as always.
    """
    probe = failure_probe or _installed.get("probe")
    if probe is not None:
        probe = probe.fresh()

    def retry(exc: BaseException) -> bool:
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, SystemExit: not a failed write
        # After identical failures with the servers up the data is at fault: to the batch.
        return probe is None or not probe.gives_up(name, exc)

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "sink %s failed (attempt %d), retrying in %.0fs: %s",
            name,
            state.attempt_number,
            state.upcoming_sleep,
            one_line(exc) if exc is not None else "?",
        )

    def attempt() -> T:
        with stall_guard(name, stall_timeout, on_stall):
            return action()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry),
        wait=tenacity.wait_exponential(multiplier=base_delay, max=max_delay),
        stop=tenacity.stop_never,
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    return retrying(attempt)


# --- Kafka --------------------------------------------------------------------------------


KAFKA_FETCH_MAX_WAIT_MS = 20


def read_kafka(
    spark: SparkSession, job: JobSettings, query: QuerySettings, starting_offsets: str | None = None
) -> DataFrame:
    """The raw Kafka records of the topic for one query, as the job's user (SASL/SCRAM, TLS
    with SASL_SSL), with headers; at most `query.max_offsets_per_trigger` records a batch."""
    k = job.common.kafka
    return (
        spark.readStream.format("kafka")
        .options(**kafka_options(job.common, k.job))
        .option("subscribe", k.topic)
        .option("groupIdPrefix", k.job_group_prefix)
        .option("includeHeaders", "true")
        .option("startingOffsets", starting_offsets or job.starting_offsets)
        .option("failOnDataLoss", str(job.fail_on_data_loss).lower())
        .option("maxOffsetsPerTrigger", str(query.max_offsets_per_trigger))
        # Spark reads offset ranges it knows are there: a fetch never needs to wait for data.
        # At the default (500 ms) the first read of a batch waited that long (measured).
        .option("kafka.fetch.max.wait.ms", str(KAFKA_FETCH_MAX_WAIT_MS))
        .load()
    )


def kafka_options(settings: Settings, account: Account) -> dict[str, str]:
    """Spark Kafka source options of one account: SASL, and TLS with the CA under SASL_SSL."""
    return {f"kafka.{key}": value for key, value in settings.kafka.jvm_config(account).items()}


# --- Delta --------------------------------------------------------------------------------


def append_idempotent(df: DataFrame, path: str, app_id: str, version: int) -> None:
    """Append; Delta skips it when (app_id, version) was already committed to this table."""
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", str(version))
        .save(path)
    )


def overwrite_idempotent(df: DataFrame, path: str, app_id: str, version: int) -> None:
    """Replace the table's content; skipped when (app_id, version) was already committed."""
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("txnAppId", app_id)
        .option("txnVersion", str(version))
        .save(path)
    )


@contextmanager
def delta_txn(spark: SparkSession, app_id: str, version: int) -> Iterator[None]:
    """Guard the DML inside (MERGE) with Delta's idempotent-write settings."""
    spark.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(version))
    try:
        yield
    finally:
        spark.conf.unset("spark.databricks.delta.write.txnAppId")
        spark.conf.unset("spark.databricks.delta.write.txnVersion")


def ensure_table(spark: SparkSession, df: DataFrame, path: str) -> DeltaTable:
    """The Delta table at path, created empty with df's schema when it does not exist yet."""
    if not DeltaTable.isDeltaTable(spark, path):
        df.limit(0).write.format("delta").mode("append").save(path)
    return DeltaTable.forPath(spark, path)


def _on(keys: Sequence[str]) -> str:
    return " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)


def merge_insert_new(
    spark: SparkSession, df: DataFrame, path: str, keys: Sequence[str], app_id: str, version: int
) -> None:
    """Insert the rows whose key is not in the table yet (first seen wins), exactly once."""
    table = ensure_table(spark, df, path)
    with delta_txn(spark, app_id, version):
        table.alias("t").merge(df.alias("s"), _on(keys)).whenNotMatchedInsertAll().execute()


def merge_upsert(
    spark: SparkSession, df: DataFrame, path: str, keys: Sequence[str], app_id: str, version: int
) -> None:
    """Replace or insert rows by key, exactly once (gold aggregates: absolute values)."""
    table = ensure_table(spark, df, path)
    with delta_txn(spark, app_id, version):
        (
            table.alias("t")
            .merge(df.alias("s"), _on(keys))
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )


def read_delta(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """The table now, or as of a version (the replay pins one, so a resumed replay sees the same rows)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", str(version))
    return reader.load(path)


def read_delta_if_exists(spark: SparkSession, path: str) -> DataFrame | None:
    """The table, or None when nothing was ever written there."""
    return read_delta(spark, path) if DeltaTable.isDeltaTable(spark, path) else None


def delta_version(spark: SparkSession, path: str) -> int:
    """The latest committed version of a Delta table."""
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    assert row is not None
    return int(row[0])


def txn_committed(spark: SparkSession, path: str, app_id: str, version: int) -> bool:
    """True when the Delta table at `path` has a transaction (app_id, >= version) in its log."""
    jvm: Any = spark.sparkContext._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    if not delta_log.tableExists():
        return False
    snapshot = delta_log.update(
        getattr(delta_log, "update$default$1")(),
        getattr(delta_log, "update$default$2")(),
        getattr(delta_log, "update$default$3")(),
    )
    seen = snapshot.transactions().get(app_id)
    return bool(seen.isDefined()) and int(seen.get()) >= version


class CachedDeltaTable:
    """A small Delta table kept by the driver between micro-batches, re-read only when it changed.

    Whether it changed is one `exists` of the next commit file of its log (any Hadoop file
    system), instead of a snapshot update and a read per batch. `collect=True` keeps the rows
    themselves (gold, the erasure ledger: tiny tables), so a batch reads nothing from Delta.
    """

    def __init__(self, spark: SparkSession, path: str, *, collect: bool = True) -> None:
        self.spark = spark
        self.path = path
        self.collect = collect
        self._version: int | None = None
        self._df: DataFrame | None = None
        # True when the last get() read the table (a version this process did not put).
        self.reloaded = False
        self.tag: int | None = None

    def _log(self) -> tuple[Any, Any]:
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        log_dir = jvm.org.apache.hadoop.fs.Path(self.path, "_delta_log")
        jsc: Any = self.spark.sparkContext._jsc
        return jvm, log_dir.getFileSystem(jsc.hadoopConfiguration())

    def latest_version(self) -> int | None:
        """The newest committed version (None: no table), probing upwards from the last one seen."""
        jvm, fs = self._log()
        log_dir = jvm.org.apache.hadoop.fs.Path(self.path, "_delta_log")
        version = self._version
        if version is None:
            if not fs.exists(log_dir):
                return None
            version = -1
            marker = jvm.org.apache.hadoop.fs.Path(log_dir, "_last_checkpoint")
            if fs.exists(marker):
                stream = fs.open(marker)
                try:
                    text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
                finally:
                    stream.close()
                version = int(json.loads(text)["version"])
        while fs.exists(jvm.org.apache.hadoop.fs.Path(log_dir, f"{version + 1:020d}.json")):
            version += 1
        return version if version >= 0 else None

    def get(self) -> DataFrame | None:
        version = self.latest_version()
        self.reloaded = False
        if version is None:
            self._version, self._df = None, None
            return None
        if version != self._version or self._df is None:
            df = read_delta(self.spark, self.path, version)
            self._df = self.spark.createDataFrame(df.collect(), df.schema) if self.collect else df
            self._version, self.tag = version, None
            self.reloaded = True
        return self._df

    def put(self, rows: list[Row], schema: StructType, tag: int | None = None) -> None:
        """After this process committed `rows` as the table's next version: keep them, with
        `tag` (e.g. the batch that wrote them: `tag` says which batch the kept rows are).

        If anything else committed meanwhile (or the write was skipped as already done),
        forget them: the next get() reads the table.
        """
        before = self._version
        version = self.latest_version()
        if before is not None and version == before + 1:
            self._df, self._version, self.tag = self.spark.createDataFrame(rows, schema), version, tag
        else:
            self._df, self.tag = None, None


# --- MongoDB ------------------------------------------------------------------------------


def write_mongo(df: DataFrame, job: JobSettings, collection: str) -> None:
    """Write each row as one document with a deterministic `_id`, idempotently.

    An unordered bulk insert through the Spark connector. When a document with that `_id`
    is there already (this batch ran before and was cut, or the person was delivered by an
    earlier batch) the connector fails the partition; then the same rows are inserted again
    with an unordered insert per partition that skips duplicate keys one by one, so a rerun
    costs about what the first run cost: never one lookup per id, never a replace-upsert
    (FerretDB/SQLite replace-upserts ~7 documents/s, docs/PERFORMANCE.md).
    """
    try:
        _mongo_insert(df, job, collection)
    except Exception as exc:  # py4j wraps the driver's MongoBulkWriteException
        if not is_duplicate_key(exc):
            raise
        log.info("mongo %s: some documents are there already: inserting the others", collection)
        insert_skipping_duplicates(df, job, collection)


def _mongo_insert(df: DataFrame, job: JobSettings, collection: str) -> None:
    (
        df.write.format("mongodb")
        .mode("append")
        .option("database", job.common.mongo.database)
        .option("collection", collection)
        .option("operationType", "insert")
        .option("ordered", "false")
        .save()
    )


MONGO_INSERT_CHUNK = 1000


def insert_skipping_duplicates(df: DataFrame, job: JobSettings, collection: str) -> None:
    """Unordered `insert_many` per partition (pymongo): duplicate keys (E11000) are skipped,
    every other write error fails the partition. Top-level timestamps go as UTC instants and
    bigints as Int64, as the connector writes them.
    """
    m = job.common.mongo
    uri, database = m.uri(m.writer), m.database
    timestamps = [f.name for f in df.schema.fields if isinstance(f.dataType, TimestampType)]
    longs = [f.name for f in df.schema.fields if isinstance(f.dataType, LongType)]
    # Instants as microseconds since the epoch: a Python worker would read timestamps in its own zone.
    prepared = df.select(*[F.unix_micros(c).alias(c) if c in timestamps else F.col(c) for c in df.columns])

    def insert(rows: Iterable[Row]) -> None:
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

        def document(row: Row) -> dict[str, Any]:
            doc = row.asDict(recursive=True)
            for name in timestamps:
                if doc[name] is not None:
                    doc[name] = epoch + dt.timedelta(microseconds=doc[name])
            for name in longs:
                if doc[name] is not None:
                    doc[name] = Int64(doc[name])
            return doc

        client: MongoClient[dict[str, Any]]
        with MongoClient(uri, serverSelectionTimeoutMS=30_000) as client:
            coll: Any = client[database][collection]
            chunk: list[dict[str, Any]] = []

            def flush() -> None:
                try:
                    coll.insert_many(chunk, ordered=False)
                except BulkWriteError as exc:
                    errors = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
                    if errors or exc.details.get("writeConcernErrors"):
                        raise
                chunk.clear()

            for row in rows:
                chunk.append(document(row))
                if len(chunk) >= MONGO_INSERT_CHUNK:
                    flush()
            if chunk:
                flush()

    prepared.foreachPartition(insert)


def is_duplicate_key(exc: BaseException) -> bool:
    """True when a write failed only because an `_id` exists already (E11000)."""
    text = str(exc)
    return "E11000" in text or "duplicate key" in text.lower()


# --- Cassandra ----------------------------------------------------------------------------


def write_cassandra(df: DataFrame, job: JobSettings, table: str) -> None:
    """Upsert rows into a table of the keyspace (INSERTs on the table's primary key)."""
    (
        df.write.format(CASSANDRA_FORMAT)
        .mode("append")
        .option("keyspace", job.common.cassandra.keyspace)
        .option("table", table)
        .save()
    )


# --- Deterministic failures ---------------------------------------------------------------
# A write that fails the same way again and again while its servers answer (data a sink
# rejects) would otherwise be retried forever and stall its query: after a few identical
# failures the servers are probed, and if they are all up the error goes to the batch,
# which jobs/poison_batches.py counts and, after POISON_BATCH_ATTEMPTS, splits.

# Identical failures of one write in a row before the servers are probed.
SAME_FAILURES_BEFORE_PROBE = 3
_HEXISH = re.compile(r"\b[0-9A-Fa-f-]*[0-9][0-9A-Fa-f-]*\b")


def error_line(exc: BaseException) -> str:
    """The line that says what went wrong: for a Java error, its root cause ("Caused by: ..."
    last), not py4j's "An error occurred while calling o123.save"; else one_line."""
    text = str(exc)
    causes = [
        line.strip()[len("Caused by: ") :]
        for line in text.splitlines()
        if line.strip().startswith("Caused by: ")
    ]
    if causes:
        return causes[-1][:300]
    for raw in text.splitlines()[1:]:
        line = raw.strip()
        if line.startswith(": "):  # py4j: ": org.apache.spark.SparkException: ..."
            return line[2:][:300]
    return one_line(exc)


def error_signature(exc: BaseException) -> str:
    """What makes two failures "the same": the error line without numbers, ids or paths' hashes."""
    return _HEXISH.sub("#", error_line(exc))


class FailureProbe:
    """Counts identical failures of one write; after `after` of them asks `servers_up`.

    One instance per write (fresh()): the count belongs to one with_retries call.
    """

    def __init__(self, servers_up: Callable[[], bool], after: int = SAME_FAILURES_BEFORE_PROBE) -> None:
        self.servers_up = servers_up
        self.after = after
        self._last: str | None = None
        self._same = 0

    def fresh(self) -> FailureProbe:
        return FailureProbe(self.servers_up, self.after)

    def gives_up(self, name: str, exc: BaseException) -> bool:
        """True when `exc` is the after-th identical failure in a row and the servers are up."""
        signature = error_signature(exc)
        self._same = self._same + 1 if signature == self._last else 1
        self._last = signature
        if self._same < self.after:
            return False
        self._same = 0  # probe again after as many more
        if self.servers_up():
            log.error(
                "sink %s failed the same way %d times while every server answers: giving the error "
                "to the batch: %s",
                name,
                self.after,
                error_line(exc),
            )
            return True
        log.warning("sink %s: a server is down, retrying without end: %s", name, error_line(exc))
        return False


_installed: dict[str, FailureProbe] = {}


def install_failure_probe(probe: FailureProbe | None) -> None:
    """The probe every with_retries of this process uses (None: retry everything forever)."""
    if probe is None:
        _installed.pop("probe", None)
    else:
        _installed["probe"] = probe
