"""Erase one person from every store: the right to erasure, as one command.

    scripts/spark-submit.sh jobs/erase.py --user-id UUID
    scripts/spark-submit.sh jobs/erase.py --email ADDRESS

Order matters (docs/GOVERNANCE.md, section 6): the ledger first (from then on every replay
skips the person), then Cassandra, MongoDB, the Delta tables with their history purged,
the gold aggregates recomputed and projected, and the ledger entry marked done. Every
step is idempotent, so a failed run is simply run again. The email itself is never
stored or logged: it is matched through the same keyed HMAC as silver's email_pseudo.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import operator
import re
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType

from common import clients, job_settings
from common.job_settings import JobSettings
from common.settings import Settings, SettingsError, eraser_account
from jobs.core import aggregates, erasure
from jobs.core.pseudonymise import email_pseudonym, email_pseudonym_col, normalise_email, normalise_email_col
from jobs.io import delta, retry
from jobs.io.session import spark_session
from jobs.pipeline import GOLD_TABLE, gold_projections

log = logging.getLogger("jobs.erase")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Tables whose history is purged: they hold the person; gold holds only counts.
PURGED_TABLES = ("bronze", "quarantine", "silver_users")
_REWRITE_SCHEMA = StructType(
    [
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("action", StringType()),
        StructField("new_value", BinaryType()),
    ]
)


@dataclass
class Subject:
    """Who is erased: user ids, and what else identifies their records (pseudonyms, email)."""

    user_ids: frozenset[str]
    email: str | None = None  # normalised, only when erased by email
    email_pseudos: frozenset[str] = frozenset()
    removed: dict[str, int] = field(default_factory=dict)


def _table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def _silver(spark: SparkSession, job: JobSettings) -> DataFrame | None:
    path = job.table("silver_users")
    return delta.read_delta(spark, path) if _table_exists(spark, path) else None


def resolve(
    spark: SparkSession, job: JobSettings, user_id: str | None, email: str | None
) -> tuple[Subject, list[Row]]:
    """The person's user ids and their silver rows (read before anything is removed)."""
    s = job.common.pseudonym
    silver = _silver(spark, job)
    if email is not None:
        normalised = normalise_email(email)
        pseudo = email_pseudonym(email, s.key, s.key_version)
        if normalised is None or pseudo is None:
            raise SettingsError("--email is empty")
        rows = [] if silver is None else silver.where(F.col("email_pseudo") == pseudo).collect()
        ids = frozenset(r.user_id for r in rows)
        pseudos = frozenset({pseudo})
    else:
        assert user_id is not None
        rows = [] if silver is None else silver.where(F.col("user_id") == user_id).collect()
        ids, normalised = frozenset({user_id}), None
        pseudos = frozenset()
    pseudos |= frozenset(r.email_pseudo for r in rows if r.email_pseudo)
    return Subject(ids, normalised, pseudos), rows


def _ledger_rows(
    spark: SparkSession,
    request_id: str,
    keys: Iterable[str],
    version: int,
    requested_at: dt.datetime,
    status: str,
) -> DataFrame:
    now = dt.datetime.now(dt.UTC)
    return spark.createDataFrame(
        [(request_id, k, str(version), requested_at, status, now) for k in sorted(keys)],
        erasure.LEDGER_SCHEMA,
    )


def subject_keys(subject: Subject, settings: Settings) -> set[str]:
    key = settings.pseudonym.key
    keys = {erasure.subject_key(uid, key) for uid in subject.user_ids}
    if subject.email is not None:
        # Recorded even when no user id matched, so the request is on file; holds no address.
        keys.add(erasure.subject_key(f"email:{subject.email}", key))
    return keys


def erase_cassandra(settings: Settings, subject: Subject, silver_rows: list[Row]) -> int:
    """random_user_table by partition key; latest_users by (day, ingestion_time, user_id)."""
    c = settings.cassandra
    eraser = eraser_account(settings.env)
    if eraser is None:
        raise SettingsError("CASSANDRA_ERASER_USER/PASSWORD are not set (see .env.example)")
    removed = 0
    with clients.cassandra_session(c, eraser, c.keyspace) as sess:
        for uid in sorted(subject.user_ids):
            # PySpark returns local naive datetimes, the Cassandra driver naive UTC ones.
            times = {
                r.ingestion_time.astimezone(dt.UTC)
                for r in silver_rows
                if r.user_id == uid and r.ingestion_time is not None
            }
            times |= {
                r.ingestion_time.replace(tzinfo=dt.UTC)
                for r in sess.execute(
                    "SELECT ingestion_time FROM random_user_table WHERE user_id = %s", (uid,)
                )
            }
            for ts in sorted(times):
                sess.execute(
                    "DELETE FROM latest_users WHERE day = %s AND ingestion_time = %s AND user_id = %s",
                    (ts.date(), ts, uid),
                )
            sess.execute("DELETE FROM random_user_table WHERE user_id = %s", (uid,))
            removed += len(times)
    return removed


def erase_mongo(settings: Settings, subject: Subject) -> tuple[int, int]:
    """randomUserCollection by _id; anomalies by user_id or, without one, the email pseudonym."""
    with clients.mongo_client(settings, settings.mongo.writer) as client:
        db = client[settings.mongo.database]
        users = db["randomUserCollection"].delete_many({"_id": {"$in": sorted(subject.user_ids)}})
        clauses: list[dict[str, object]] = [{"user_id": {"$in": sorted(subject.user_ids)}}]
        if subject.email_pseudos:
            clauses.append({"record.email_pseudo": {"$in": sorted(subject.email_pseudos)}})
        anomalies = db["anomalies"].delete_many({"$or": clauses})
    return users.deleted_count, anomalies.deleted_count


def _mentions(column: str, subject: Subject) -> Column:
    text = F.col(column).cast("string")
    cond = F.lit(False)
    for uid in sorted(subject.user_ids):
        cond = cond | text.contains(uid)
    if subject.email:
        cond = cond | F.lower(text).contains(subject.email)
    return cond


def erase_bronze(spark: SparkSession, job: JobSettings, subject: Subject) -> tuple[int, int]:
    """Rewrite each bronze record that mentions the person without them, or delete it."""
    path = job.table("bronze")
    if not _table_exists(spark, path):
        return 0, 0
    bronze = delta.read_delta(spark, path)
    hits = bronze.where(_mentions("value", subject)).select("topic", "partition", "offset", "value").collect()
    plan = []
    for row in hits:
        outcome = erasure.rewrite_record(bytes(row.value), subject.user_ids, subject.email)
        if outcome.action != "keep":
            plan.append((row.topic, row.partition, row.offset, outcome.action, outcome.value))
    if not plan:
        return 0, 0
    changes = spark.createDataFrame(plan, _REWRITE_SCHEMA)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(changes.alias("s"), "t.topic = s.topic AND t.partition = s.partition AND t.offset = s.offset")
        .whenMatchedDelete(condition="s.action = 'delete'")
        .whenMatchedUpdate(condition="s.action = 'rewrite'", set={"value": "s.new_value"})
        .execute()
    )
    rewritten = sum(1 for p in plan if p[3] == "rewrite")
    return rewritten, len(plan) - rewritten


def _merge_delete(spark: SparkSession, path: str, rows: DataFrame, on: str) -> int:
    """Delete the table's rows that `rows` names by key columns: a MERGE ... WHEN MATCHED DELETE.

    The commit records only the join condition (`t.key = s.key`): whatever found the rows
    (a person's id, email, subject key) stays in this session, never in the transaction log,
    which a DELETE with a literal predicate would fill with the identifier.
    """
    keys = rows.distinct().persist()
    try:
        if keys.isEmpty():
            return 0
        table = DeltaTable.forPath(spark, path)
        table.alias("t").merge(keys.alias("s"), on).whenMatchedDelete().execute()
        last = table.history(1).select("operationMetrics").first()
        return int(((last.operationMetrics if last else None) or {}).get("numTargetRowsDeleted", 0))
    finally:
        keys.unpersist()


def _ledger_keys(spark: SparkSession, job: JobSettings) -> DataFrame:
    ledger = delta.read_delta(spark, job.table(erasure.LEDGER_TABLE))
    return ledger.select(F.col("subject_key").alias("_erased_key")).distinct()


def erase_delta_rows(spark: SparkSession, job: JobSettings, subject: Subject) -> dict[str, int]:
    """silver_users and quarantine rows of every person in the ledger (this request included).

    Through the ledger: the rows' subject keys are computed in Spark from their columns
    (silver: user_id; quarantine: the raw user's uuid and normalised email) and joined with
    the ledger's keys. A quarantined message that cannot be parsed is found by the request's
    identifiers in its text, a user without uuid by the person's email pseudonyms. The rows
    are then removed by their own keys (user_id, anomaly_id), so no commit of the lake
    records who was erased.
    """
    counts: dict[str, int] = {}
    key = job.common.pseudonym.key
    erased = F.broadcast(_ledger_keys(spark, job))
    silver_path, quarantine_path = job.table("silver_users"), job.table("quarantine")
    if _table_exists(spark, silver_path):
        silver = delta.read_delta(spark, silver_path)
        hits = silver.join(
            erased, erasure.subject_key_col(F.col("user_id"), key) == erased["_erased_key"], "left_semi"
        ).select("user_id")
        counts["silver_users"] = _merge_delete(spark, silver_path, hits, "t.user_id = s.user_id")
    if _table_exists(spark, quarantine_path):
        quarantine = delta.read_delta(spark, quarantine_path)
        user = F.from_json(F.col("raw_json"), "login STRUCT<uuid: STRING>, email STRING")
        by_id = erasure.subject_key_col(user["login"]["uuid"], key)
        by_email = erasure.subject_key_col(F.concat(F.lit("email:"), normalise_email_col(user["email"])), key)
        by_key = quarantine.select("anomaly_id", F.explode(F.array(by_id, by_email)).alias("_key")).join(
            erased, F.col("_key") == erased["_erased_key"], "left_semi"
        )
        # The request's own identifiers: in a text that cannot be parsed, or a record without
        # uuid that carries one of the person's email pseudonyms (as erase_mongo's anomalies).
        by_pseudo = email_pseudonym_col(user["email"], key, job.common.pseudonym.key_version).isin(
            sorted(subject.email_pseudos)
        )
        by_text = quarantine.where(
            _mentions("raw_json", subject)
            | _mentions("raw_value", subject)
            | F.coalesce(by_pseudo, F.lit(False))
        )
        hits = by_key.select("anomaly_id").unionByName(by_text.select("anomaly_id"))
        counts["quarantine"] = _merge_delete(spark, quarantine_path, hits, "t.anomaly_id = s.anomaly_id")
    return counts


def purge_history(spark: SparkSession, job: JobSettings) -> None:
    """Physically remove the files of older versions (time travel to them then fails).

    The zero-hour retention check is off for this session only; the stream, in its own
    session, only appends and never reads old versions (docs/GOVERNANCE.md, section 6).
    """
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        for name in PURGED_TABLES:
            path = job.table(name)
            if not _table_exists(spark, path):
                continue
            props = DeltaTable.forPath(spark, path).detail().first()
            if props is not None and (props.properties or {}).get("delta.enableDeletionVectors") == "true":
                # Deletion vectors only mark rows deleted: rewrite the files without them.
                spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
            DeltaTable.forPath(spark, path).vacuum(0)
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")


def recompute_gold(
    spark: SparkSession, job: JobSettings, silver_rows: list[Row], request_id: str
) -> dict[str, int]:
    """Gold rows of the person's groups, recomputed from silver (now without them), projected to
    Cassandra as absolute values; a group left empty is deleted from gold and Cassandra.
    Returns the groups updated per statistics table.

    Reuses the job's own gold (aggregates.gold_stats, jobs.pipeline.gold_projections) and
    writers (jobs/io). Without a gold table yet (a lake older than it), only Cassandra is
    recomputed: the job's next batch builds gold from all of silver."""
    silver_path = job.table("silver_users")
    if not _table_exists(spark, silver_path):
        return {}
    now = dt.datetime.now(dt.UTC)
    silver = delta.read_delta(spark, silver_path)
    path = job.table(GOLD_TABLE)
    gold_exists = _table_exists(spark, path)
    stats = aggregates.gold_stats(now)
    computed = silver.select("country", "gender", "age").transform(stats)
    recomputed = computed.collect()  # a few dozen rows: every group of silver
    if silver_rows:
        person = spark.createDataFrame(silver_rows, silver.schema).select("country", "gender", "age")
        groups = {(r.dimension, r.group_key) for r in person.transform(stats).collect()}
    elif gold_exists:
        # A rerun after silver was already cleaned: the person's groups are unknown, so every
        # group is recomputed (absolute values: the same result, only slower).
        groups = {(r.dimension, r.group_key) for r in delta.read_delta(spark, path).collect()}
    else:
        groups = {(r.dimension, r.group_key) for r in recomputed}
    rows = [r for r in recomputed if (r.dimension, r.group_key) in groups]
    gone = sorted(groups - {(r.dimension, r.group_key) for r in rows})
    gold = spark.createDataFrame(rows, computed.schema)
    if gold_exists:
        delta.merge_upsert(spark, gold, path, aggregates.GOLD_KEY, f"erase-{request_id}", 0)
        if gone:  # one commit for every group left empty
            DeltaTable.forPath(spark, path).delete(
                reduce(
                    operator.or_,
                    [
                        (F.col("dimension") == dimension) & (F.col("group_key") == group)
                        for dimension, group in gone
                    ],
                )
            )
    for write in gold_projections(gold, job):
        write()
    tables = {dimension: table for dimension, table, _ in aggregates.DIMENSIONS}
    if gone:
        c = job.common.cassandra
        with clients.cassandra_session(c, c.writer, c.keyspace) as sess:
            for dimension, group in gone:
                # table and its key column are constants of aggregates.DIMENSIONS, never input.
                sess.execute(f"DELETE FROM {tables[dimension]} WHERE {dimension} = %s", (group,))  # noqa: S608
    return {table: sum(r.dimension == dimension for r in rows) for dimension, table in tables.items()}


def record(
    spark: SparkSession,
    job: JobSettings,
    request_id: str,
    keys: Iterable[str],
    requested_at: dt.datetime,
    status: str,
) -> None:
    """Append the request's ledger rows (subject keys only) with this status, exactly once."""
    version = job.common.pseudonym.key_version
    rows = _ledger_rows(spark, request_id, keys, version, requested_at, status)
    delta.append_idempotent(rows, job.table(erasure.LEDGER_TABLE), request_id, int(status == erasure.DONE))


def erase_lake(spark: SparkSession, job: JobSettings, subject: Subject) -> dict[str, int]:
    """The lake's part, after the ledger entry: bronze rewritten, silver and quarantine rows
    deleted through the ledger, then the older versions' files vacuumed."""
    report: dict[str, int] = {}
    report["bronze_rewritten"], report["bronze_deleted"] = erase_bronze(spark, job, subject)
    report.update(erase_delta_rows(spark, job, subject))
    purge_history(spark, job)
    return report


def run(spark: SparkSession, job: JobSettings, user_id: str | None, email: str | None) -> str:
    """The whole procedure; returns the request id."""
    settings = job.common
    request_id = str(uuid.uuid4())
    requested_at = dt.datetime.now(dt.UTC)
    subject, silver_rows = resolve(spark, job, user_id, email)
    keys = subject_keys(subject, settings)
    record(spark, job, request_id, keys, requested_at, erasure.REQUESTED)
    log.info("request %s: %d user id(s) found, ledger entry written", request_id, len(subject.user_ids))

    report: dict[str, object] = {}
    report["cassandra_rows"] = erase_cassandra(settings, subject, silver_rows)
    report["mongo_users"], report["mongo_anomalies"] = erase_mongo(settings, subject)
    report.update(erase_lake(spark, job, subject))
    report["gold_groups"] = recompute_gold(spark, job, silver_rows, request_id)
    record(spark, job, request_id, keys, requested_at, erasure.DONE)
    log.info("request %s done: %s", request_id, " ".join(f"{k}={v}" for k, v in report.items()))
    return request_id


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs/erase.py", description=__doc__.splitlines()[0])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", help="the person's login.uuid (any case)")
    who.add_argument("--email", help="the person's email (matched through the keyed HMAC)")
    args = parser.parse_args(argv)
    if args.user_id is not None:
        # A UUID is the same in either case (RFC 4122), and every store holds it in lower
        # case (the quality rules quarantine any other): `DCC6D588-...` as given would match
        # no row, and its ledger key would not stop the person's next records.
        args.user_id = args.user_id.strip().lower()
        if not _UUID.match(args.user_id):
            parser.error("--user-id must be a UUID")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        job = job_settings.load()
    except SettingsError as exc:
        log.error("cannot start: %s", exc)
        return 2
    spark = spark_session(job, "erase")
    spark.sparkContext.setLogLevel("WARN")
    try:
        request_id = run(spark, job, args.user_id, args.email)
        print(f"erasure {request_id} done")
    except SettingsError as exc:
        log.error("erasure failed: %s", exc)
        return 2
    except Exception as exc:
        log.error("erasure failed (run it again: every step is idempotent): %s", retry.one_line(exc))
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
