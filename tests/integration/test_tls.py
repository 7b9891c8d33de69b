"""TLS on the client connections of the three servers (STACK_TLS=true, set by tests/conftest.py).

Every client here is built by the project's own code from Settings with the client switches on
(KAFKA_SECURITY_PROTOCOL=SASL_SSL, CASSANDRA_SSL=true, MONGO_TLS=true), exactly as a user turns
them on in `.env`. The negative cases prove the TLS ports are really TLS and really verified:
a plaintext client is refused, and a client that trusts another (fresh) CA fails the handshake.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import NoHostAvailable
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from py4j.protocol import Py4JJavaError
from pymongo.errors import ServerSelectionTimeoutError
from pyspark.sql import SparkSession

from common import clients
from common.clients import cassandra_cluster
from common.settings import Settings, from_mapping
from jobs.io import cassandra, kafka
from jobs.io.session import install_jvm_trust
from ops import kafka_admin

SEND_TIMEOUT_S = 20
CONSUME_DEADLINE_S = 60
REFUSED_BOOTSTRAP_MS = 4_000
MONGO_REFUSED_MS = 3_000
RECORDS = 5


@pytest.fixture(scope="module")
def tls(stack: Settings) -> Settings:
    """The test settings with every client switched to TLS, parsed like a user's `.env`."""
    s = from_mapping(
        {**stack.env, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CASSANDRA_SSL": "true", "MONGO_TLS": "true"},
        stack.stack.root,
    )
    assert s.stack.tls, "tests/conftest.py must start the stack with STACK_TLS=true"
    assert s.kafka.bootstrap_servers.endswith(":9094") and s.kafka.ssl_cafile.endswith("tls/ca.pem")
    assert s.mongo.port == 27018
    return s


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A freshly generated CA that signed nothing of ours."""
    d = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=not our CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")),
        ],
        check=True,
        capture_output=True,
    )
    return str(d / "ca.pem")


# --- Kafka: SASL_SSL on 9094 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def topic(tls: Settings) -> Iterator[tuple[str, list[bytes]]]:
    """A private topic, created and filled by the admin over SASL_SSL; deleted afterwards."""
    k = tls.kafka
    name = f"rua_tls_test_{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(**kafka_admin.client_config(k, k.admin, 15_000))
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        values = [f"tls-{i}-{uuid.uuid4().hex}".encode() for i in range(RECORDS)]
        producer = KafkaProducer(**k.client_config(k.admin), acks="all")
        try:
            for value in values:
                producer.send(name, value=value).get(timeout=SEND_TIMEOUT_S)
        finally:
            producer.close(timeout=10)
        yield name, values
    finally:
        admin.delete_topics([name])
        admin.close()


def _consume_all(config: dict[str, Any], topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, **config, auto_offset_reset="earliest", enable_auto_commit=False)
    got: list[bytes] = []
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                got += [r.value for r in records]
    finally:
        consumer.close()
    return got


def test_kafka_round_trip_over_sasl_ssl(tls: Settings, topic: tuple[str, list[bytes]]) -> None:
    name, values = topic
    config = tls.kafka.client_config(tls.kafka.admin)
    assert config["security_protocol"] == "SASL_SSL" and config["ssl_check_hostname"] is True
    assert _consume_all(config, name, len(values)) == values


def test_kafka_acls_apply_on_the_tls_listener(tls: Settings, topic: tuple[str, list[bytes]]) -> None:
    # Same SCRAM users and ACLs as on 9092: the producer may write its topic only, not the private one.
    name, _ = topic
    k = tls.kafka
    producer = KafkaProducer(**k.client_config(k.producer), enable_idempotence=False, retries=0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(name, value=b"must not land").get(timeout=SEND_TIMEOUT_S)
    finally:
        producer.close(timeout=10)


def _bootstrap(config: dict[str, Any]) -> None:
    admin = KafkaAdminClient(**config, bootstrap_timeout_ms=REFUSED_BOOTSTRAP_MS)
    admin.close()


def test_kafka_plaintext_client_is_refused_on_the_tls_port(tls: Settings) -> None:
    plain = replace(tls.kafka, security_protocol="SASL_PLAINTEXT")
    with pytest.raises(KafkaError):
        _bootstrap(plain.client_config(plain.admin))


def test_kafka_client_trusting_another_ca_fails_verification(
    tls: Settings, other_ca: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = replace(tls.kafka, ssl_cafile=other_ca)
    with caplog.at_level(logging.DEBUG, logger="kafka"), pytest.raises(KafkaError):
        _bootstrap(wrong.client_config(wrong.admin))
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text or "certificate verify failed" in caplog.text


# --- Cassandra: TLS optional on 9042 --------------------------------------------------------


def test_cassandra_query_over_tls_is_really_tls(tls: Settings) -> None:
    c = tls.cassandra
    cluster = cassandra_cluster(c, c.admin)
    assert isinstance(cluster.ssl_context, ssl.SSLContext) and cluster.ssl_context.check_hostname
    try:
        session = cluster.connect()
        connection = cluster.control_connection._connection
        assert connection is not None
        sock = connection._socket
        assert isinstance(sock, ssl.SSLSocket) and sock.version() in {"TLSv1.3", "TLSv1.2"}
        local_port = sock.getsockname()[1]
        rows = session.execute(
            "SELECT port, ssl_enabled, ssl_protocol, username FROM system_views.clients"
        ).all()
        ours = [r for r in rows if r.port == local_port]
        assert len(ours) == 1, rows
        assert ours[0].ssl_enabled is True and ours[0].username == c.admin.user
        assert ours[0].ssl_protocol == sock.version()
        assert session.execute("SELECT release_version FROM system.local").one() is not None
    finally:
        cluster.shutdown()


def test_cassandra_plaintext_still_works_on_the_same_port(tls: Settings) -> None:
    # optional: true keeps every existing (plaintext) client working.
    plain = replace(tls.cassandra, ssl=False)
    cluster = cassandra_cluster(plain, plain.reader, connect_timeout=5)
    try:
        session = cluster.connect()
        assert session.execute("SELECT release_version FROM system.local").one() is not None
    finally:
        cluster.shutdown()


def test_cassandra_client_trusting_another_ca_fails_verification(tls: Settings, other_ca: str) -> None:
    wrong = replace(tls.cassandra, ssl_cafile=other_ca)
    cluster = cassandra_cluster(wrong, wrong.reader, connect_timeout=5)
    try:
        with pytest.raises(NoHostAvailable) as err:
            cluster.connect()
    finally:
        cluster.shutdown()
    assert "certificate verify failed" in str(err.value).lower()


# --- MongoDB (FerretDB): TLS on 27018 --------------------------------------------------------


def test_mongo_insert_and_find_over_tls(tls: Settings) -> None:
    assert "tls=true" in tls.mongo.uri(tls.mongo.writer)
    doc_id = f"tls-{uuid.uuid4().hex}"
    with clients.mongo_client(tls, tls.mongo.writer) as client:
        collection = client[tls.mongo.database]["tls_test"]
        try:
            collection.insert_one({"_id": doc_id, "via": "tls"})
            assert collection.find_one({"_id": doc_id}) == {"_id": doc_id, "via": "tls"}
        finally:
            collection.delete_one({"_id": doc_id})


def test_mongo_plaintext_client_is_refused_on_the_tls_port(tls: Settings) -> None:
    plain = replace(tls, mongo=replace(tls.mongo, tls=False))
    assert plain.mongo.uri().startswith("mongodb://127.0.0.1:27018/")
    with (
        clients.mongo_client(plain, plain.mongo.writer) as client,
        pytest.raises(ServerSelectionTimeoutError),
    ):
        client.admin.command("ping")


def test_mongo_client_trusting_another_ca_fails_verification(tls: Settings, other_ca: str) -> None:
    wrong = replace(tls, mongo=replace(tls.mongo, tls_cafile=other_ca))
    with (
        clients.mongo_client(wrong, wrong.mongo.writer) as client,
        pytest.raises(ServerSelectionTimeoutError) as err,
    ):
        client.admin.command("ping")
    assert "certificate verify failed" in str(err.value).lower()


# --- Spark: the job's connector configuration over TLS ---------------------------------------


def test_spark_reads_kafka_and_writes_cassandra_and_mongo_over_tls(
    spark: SparkSession, tls: Settings, topic: tuple[str, list[bytes]]
) -> None:
    name, values = topic
    options = kafka.kafka_options(tls, tls.kafka.admin)
    assert options["kafka.security.protocol"] == "SASL_SSL" and options["kafka.ssl.truststore.type"] == "PEM"
    read = (
        spark.read.format("kafka")
        .options(**options)
        .option("subscribe", name)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    assert sorted(bytes(r.value) for r in read.select("value").collect()) == sorted(values)

    # Cassandra connector over TLS (trust store of $STACK_DIR/tls), writer account, test keyspace.
    conf = cassandra.cassandra_conf(tls, tls.cassandra.writer)
    assert conf["spark.cassandra.connection.ssl.enabled"] == "true"
    marker = f"tls-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC).replace(microsecond=0)
    row = spark.createDataFrame(
        [(date.today(), now, marker, 1, 0)],
        "day date, batch_time timestamp, query_name string, batch_id long, input_rows long",
    )
    table = {"keyspace": tls.cassandra.keyspace, "table": "pipeline_metrics"}
    row.write.format(cassandra.CASSANDRA_FORMAT).mode("append").options(**conf, **table).save()
    back = (
        spark.read.format(cassandra.CASSANDRA_FORMAT)
        .options(**conf, **table)
        .load()
        .where(f"query_name = '{marker}'")
        .select("query_name", "batch_id")
        .collect()
    )
    assert [(r.query_name, r.batch_id) for r in back] == [(marker, 1)]
    cluster = cassandra_cluster(tls.cassandra, tls.cassandra.admin)
    try:
        cluster.connect().execute(
            f"DELETE FROM {tls.cassandra.keyspace}.pipeline_metrics WHERE day = %s AND batch_time = %s "
            "AND query_name = %s AND batch_id = 1",
            (date.today(), now, marker),
        )
    finally:
        cluster.shutdown()

    # MongoDB connector: the Java driver trusts the JVM default, which the job sets from the trust store.
    uri = tls.mongo.uri(tls.mongo.writer, jvm=True)
    assert "tls=true" in uri and ":27018/" in uri
    doc = spark.createDataFrame([(marker, "spark-tls")], "_id string, via string")
    mongo = {"database": tls.mongo.database, "collection": "tls_test_spark"}
    with pytest.raises(Py4JJavaError) as untrusted:  # the JVM's default CAs do not know ours
        doc.write.format("mongodb").mode("append").options(
            **mongo, **{"connection.uri": uri + "&serverSelectionTimeoutMS=5000"}
        ).save()
    assert "PKIX" in str(untrusted.value) or "SSLHandshake" in str(untrusted.value)
    assert tls.mongo.jvm_truststore is not None
    install_jvm_trust(spark, tls.mongo.jvm_truststore)
    doc.write.format("mongodb").mode("append").options(**mongo, **{"connection.uri": uri}).save()
    # Read back with pymongo (the job only writes through the connector; its reads need $sample,
    # which FerretDB lacks).
    with clients.mongo_client(tls, tls.mongo.writer) as client:
        collection = client[tls.mongo.database]["tls_test_spark"]
        try:
            assert collection.find_one({"_id": marker}) == {"_id": marker, "via": "spark-tls"}
        finally:
            collection.delete_one({"_id": marker})


def test_stack_tls_files_are_private(tls: Settings) -> None:
    d: Path = tls.stack.tls_dir
    for secret in ("ca.key", "server.key", "keystore.password", "truststore.password", "keystore.p12"):
        assert (d / secret).stat().st_mode & 0o077 == 0, secret
    assert (d / "ca.pem").is_file() and (d / "truststore.p12").is_file()
