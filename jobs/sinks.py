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

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from delta.tables import DeltaTable
from pymongo import MongoClient
from pymongo.collection import Collection
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

from common.settings import Account, JvmTruststore, Settings, SettingsError
from jobs.settings import JobSettings

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
        "spark.cassandra.auth.password": account.password,
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


def with_retries(
    name: str,
    action: Callable[[], T],
    *,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    stall_timeout: float | None = None,
    on_stall: Callable[[str, float], None] = exit_on_stall,
) -> T:
    """Run a sink write until it succeeds: a sink that is down stalls the stream, never skips data.

    A failing attempt is retried with backoff; an attempt that neither fails nor returns
    within `stall_timeout` seconds calls `on_stall` (by default: exit for a restart).
    """
    attempt = 0
    while True:
        timer = None
        if stall_timeout:
            timer = threading.Timer(stall_timeout, on_stall, (name, stall_timeout))
            timer.daemon = True
            timer.start()
        try:
            return action()
        except Exception as exc:
            attempt += 1
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            log.warning(
                "sink %s failed (attempt %d), retrying in %.0fs: %s", name, attempt, delay, one_line(exc)
            )
            sleep(delay)
        finally:
            if timer is not None:
                timer.cancel()


# --- Kafka --------------------------------------------------------------------------------


def read_kafka(spark: SparkSession, job: JobSettings, starting_offsets: str | None = None) -> DataFrame:
    """The raw Kafka records of the topic as the job's user (SASL/SCRAM, TLS with SASL_SSL), with headers."""
    k = job.common.kafka
    return (
        spark.readStream.format("kafka")
        .options(**kafka_options(job.common, k.job))
        .option("subscribe", k.topic)
        .option("groupIdPrefix", k.job_group_prefix)
        .option("includeHeaders", "true")
        .option("startingOffsets", starting_offsets or job.starting_offsets)
        .option("failOnDataLoss", str(job.fail_on_data_loss).lower())
        .option("maxOffsetsPerTrigger", str(job.max_offsets_per_trigger))
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


# --- MongoDB ------------------------------------------------------------------------------


def write_mongo(df: DataFrame, job: JobSettings, collection: str) -> None:
    """Write each row as one document with a deterministic `_id`, idempotently.

    An unordered bulk insert: the pipeline only sends documents that are new (users this
    batch added to silver, anomalies of this batch). When this batch ran before (a rerun
    after a crash) some are already there, identical (the same silver rows): then only the
    missing ones are inserted. Never a replace-upsert: FerretDB/SQLite inserts ~6,600
    documents/s but replace-upserts 7/s (docs/PERFORMANCE.md).
    """
    try:
        _mongo_insert(df, job, collection)
    except Exception as exc:  # py4j wraps the driver's MongoBulkWriteException
        if not is_duplicate_key(exc):
            raise
        existing = existing_mongo_ids(job, collection, [str(row[0]) for row in df.select("_id").collect()])
        log.info(
            "mongo %s: %d documents of this batch already there (a rerun): inserting the others",
            collection,
            len(existing),
        )
        if existing:
            spark = df.sparkSession
            known = spark.createDataFrame([(i,) for i in sorted(existing)], df.select("_id").schema)
            df = df.join(known, "_id", "left_anti")
        _mongo_insert(df, job, collection)


def _mongo_insert(df: DataFrame, job: JobSettings, collection: str) -> None:
    _mongo_writer(df, job, collection).option("operationType", "insert").option("ordered", "false").save()


def existing_mongo_ids(job: JobSettings, collection: str, ids: list[str], threads: int = 4) -> set[str]:
    """Which of these `_id`s the collection holds (asked by the job's own Mongo account).

    One point query per id, a few at a time: FerretDB answers `{_id: x}` from its index in
    ~1.5 ms but scans the whole collection for `{_id: {$in: [...]}}` (122 s for 100 ids in
    800k documents, measured).
    """
    m = job.common.mongo
    client: MongoClient[dict[str, object]]
    with MongoClient(m.uri(m.writer), serverSelectionTimeoutMS=30_000, maxPoolSize=threads) as client:
        coll: Collection[dict[str, object]] = client[m.database][collection]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            found = pool.map(lambda i: coll.find_one({"_id": i}, {"_id": 1}) is not None, ids)
            return {i for i, there in zip(ids, found, strict=True) if there}


def _mongo_writer(df: DataFrame, job: JobSettings, collection: str) -> DataFrameWriter:
    return (
        df.write.format("mongodb")
        .mode("append")
        .option("database", job.common.mongo.database)
        .option("collection", collection)
    )


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
