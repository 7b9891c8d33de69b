"""Checks before the job starts: each server answers as the job's own account.

Bad configuration (unreachable server, wrong password, missing topic or table) gives one
clear line naming what is wrong, instead of a wall of JVM stack trace minutes later.
"""

from __future__ import annotations

from kafka import KafkaConsumer

from common.clients import cassandra_cluster, kafka_config, mongo_client
from common.settings import Settings
from contract import tables

# Every Cassandra table of the contract: the job writes them all.
CASSANDRA_TABLES = tuple(t.name for t in tables.TABLES)


class PreflightError(RuntimeError):
    """A server is not usable by the job; the message says which and why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def check_kafka(s: Settings) -> None:
    k = s.kafka
    consumer = None
    try:
        consumer = KafkaConsumer(**kafka_config(k, k.job, request_timeout_ms=15000))
        partitions = consumer.partitions_for_topic(k.topic)
    except Exception as exc:
        raise PreflightError(f"Kafka at {k.bootstrap_servers} as {k.job.user}: {_first_line(exc)}") from None
    finally:
        if consumer is not None:
            consumer.close()
    if not partitions:
        raise PreflightError(f"Kafka topic {k.topic!r} does not exist or {k.job.user} may not describe it")


def check_cassandra(s: Settings) -> None:
    c = s.cassandra
    cluster = cassandra_cluster(c, c.writer, connect_timeout=10)
    try:
        cluster.connect()
        keyspace = cluster.metadata.keyspaces.get(c.keyspace)
        if keyspace is None:
            raise PreflightError(f"Cassandra keyspace {c.keyspace!r} is missing (run `make up`)")
        missing = [t for t in CASSANDRA_TABLES if t not in keyspace.tables]
        if missing:
            raise PreflightError(
                f"Cassandra tables missing in {c.keyspace}: {', '.join(missing)} (run `make up`)"
            )
    except PreflightError:
        raise
    except Exception as exc:
        raise PreflightError(
            f"Cassandra at {','.join(c.hosts)} as {c.writer.user}: {_first_line(exc)}"
        ) from None
    finally:
        cluster.shutdown()


def check_mongo(s: Settings) -> None:
    m = s.mongo
    client = mongo_client(s, m.writer, serverSelectionTimeoutMS=10000)
    try:
        client[m.database].command("ping")
        client[m.database]["randomUserCollection"].find_one({}, {"_id": 1})
    except Exception as exc:
        where = "MONGO_URI" if m.external_uri else f"{m.host}:{m.port}"
        raise PreflightError(f"MongoDB at {where} as {m.writer.user}: {_first_line(exc)}") from None
    finally:
        client.close()


def run(s: Settings) -> None:
    """Raise PreflightError on the first server the job cannot use."""
    check_kafka(s)
    check_cassandra(s)
    check_mongo(s)
