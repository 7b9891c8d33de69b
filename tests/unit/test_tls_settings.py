"""TLS settings: STACK_TLS, the client switches, their defaults and one-line refusals."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from common.clients import cassandra_cluster
from common.envfile import parse
from common.settings import Settings, SettingsError, from_mapping
from tests.unit.settings_env import minimal_env

ROOT = Path("/project")
BASE = minimal_env()
CA = "/project/.stack/tls/ca.pem"


def _load(**env: str) -> Settings:
    return from_mapping(BASE | env, ROOT)


def test_defaults_tls_servers_plaintext_clients() -> None:
    s = _load()
    assert s.stack.tls is True
    assert s.stack.tls_dir == ROOT / ".stack" / "tls"
    assert (s.kafka.bootstrap_servers, s.kafka.tls, s.kafka.ssl_cafile) == ("127.0.0.1:9092", False, "")
    assert "ssl_cafile" not in s.kafka.client_config(s.kafka.admin)
    assert "ssl.truststore.location" not in s.kafka.jvm_config(s.kafka.admin)
    assert (s.cassandra.ssl, s.cassandra.ssl_cafile) == (False, "")
    assert (s.mongo.tls, s.mongo.port) == (False, 27017)
    assert s.mongo.uri(s.mongo.admin).endswith(":27017/?authMechanism=SCRAM-SHA-256&authSource=admin")


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("FALSE", False), ("0", False)])
def test_stack_tls_values(raw: str, value: bool) -> None:
    assert _load(STACK_TLS=raw).stack.tls is value


def test_kafka_sasl_ssl_uses_the_tls_port_and_the_local_ca() -> None:
    k = _load(KAFKA_SECURITY_PROTOCOL="SASL_SSL").kafka
    assert k.bootstrap_servers == "127.0.0.1:9094"
    config = k.client_config(k.producer)
    assert (config["security_protocol"], config["ssl_cafile"], config["ssl_check_hostname"]) == (
        "SASL_SSL",
        CA,
        True,
    )
    jvm = k.jvm_config(k.job)
    assert (jvm["ssl.truststore.type"], jvm["ssl.truststore.location"]) == ("PEM", CA)
    other_port = _load(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_TLS_PORT="19094").kafka
    assert other_port.bootstrap_servers == "127.0.0.1:19094"


def test_external_kafka_trusts_the_system_cas_unless_told() -> None:
    k = _load(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_BOOTSTRAP_SERVERS="k1:9093", STACK_TLS="false").kafka
    assert (k.bootstrap_servers, k.ssl_cafile) == ("k1:9093", "")
    assert "ssl_cafile" not in k.client_config(k.admin)
    given = _load(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_BOOTSTRAP_SERVERS="k1:9093", KAFKA_SSL_CAFILE="ca.pem"
    )
    assert given.kafka.ssl_cafile == "/project/ca.pem"


def test_cassandra_ssl_builds_a_verifying_context() -> None:
    s = _load(CASSANDRA_SSL="true", CASSANDRA_SSL_CAFILE="/etc/ssl/certs/ca-certificates.crt")
    assert s.cassandra.ssl and s.cassandra.ssl_cafile == "/etc/ssl/certs/ca-certificates.crt"
    cluster = cassandra_cluster(s.cassandra, s.cassandra.reader)
    try:
        assert cluster.ssl_context is not None
        assert cluster.ssl_context.check_hostname is True
    finally:
        cluster.shutdown()
    assert cassandra_cluster(_load().cassandra, _load().cassandra.reader).ssl_context is None


def test_mongo_tls_uri_port_and_ca() -> None:
    m = _load(MONGO_TLS="yes").mongo
    parts = urlsplit(m.uri(m.writer))
    assert parts.port == 27018
    query = parse_qs(parts.query)
    assert query["tls"] == ["true"] and query["tlsCAFile"] == [CA]
    assert "tlsCAFile" not in m.uri(m.writer, jvm=True) and "tls=true" in m.uri(m.writer, jvm=True)
    assert m.uri() == "mongodb://127.0.0.1:27018/?tls=true&tlsCAFile=%2Fproject%2F.stack%2Ftls%2Fca.pem"
    assert _load(MONGO_TLS="true", MONGO_TLS_PORT="27999").mongo.port == 27999


def test_jvm_truststore_defaults_and_password_file(tmp_path: Path) -> None:
    s = _load()
    assert s.cassandra.jvm_truststore is not None
    assert s.cassandra.jvm_truststore.path == ROOT / ".stack" / "tls" / "truststore.p12"
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    custom = _load(JVM_TRUSTSTORE=str(tmp_path / "t.p12"), JVM_TRUSTSTORE_PASSWORD_FILE=str(secret))
    trust = custom.mongo.jvm_truststore
    assert trust is not None and trust.password() == "s3cret"
    assert "s3cret" not in repr(trust)
    missing = _load(JVM_TRUSTSTORE_PASSWORD_FILE=str(tmp_path / "none")).mongo.jvm_truststore
    assert missing is not None
    with pytest.raises(SettingsError, match=r"JVM_TRUSTSTORE_PASSWORD_FILE .* cannot be read"):
        missing.password()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STACK_TLS": "maybe"}, "STACK_TLS='maybe' must be true or false"),
        ({"CASSANDRA_SSL": "2"}, "CASSANDRA_SSL='2' must be true or false"),
        ({"MONGO_TLS": "tls"}, "MONGO_TLS='tls' must be true or false"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL"},
            "KAFKA_SECURITY_PROTOCOL='SSL' must be SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_TLS_PORT": "0"},
            "KAFKA_TLS_PORT=0 is outside 1..65535",
        ),
        ({"MONGO_TLS": "true", "MONGO_TLS_PORT": "x"}, "MONGO_TLS_PORT='x' is not an integer"),
        ({"MONGO_TLS": "true", "STACK_TLS": "false"}, "MONGO_TLS=true asks for TLS but STACK_TLS=false"),
        ({"CASSANDRA_SSL": "true", "STACK_TLS": "0"}, "CASSANDRA_SSL=true asks for TLS but STACK_TLS=false"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STACK_TLS": "false"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL asks for TLS but STACK_TLS=false",
        ),
    ],
)
def test_refusals_are_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        _load(**env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_external_servers_need_no_local_tls() -> None:
    s = _load(
        STACK_TLS="false",
        CASSANDRA_SSL="true",
        CASSANDRA_HOSTS="c1",
        MONGO_TLS="true",
        MONGO_URI="mongodb://m/",
    )
    assert s.cassandra.ssl and s.cassandra.ssl_cafile == ""
    assert s.mongo.uri() == "mongodb://m/"


def test_flag_default_and_blank() -> None:
    unset = {k: v for k, v in BASE.items() if k != "STACK_TLS"}
    assert from_mapping(unset, ROOT).stack.tls is True
    assert _load(STACK_TLS=" ", CASSANDRA_SSL="").stack.tls is True
    assert _load(CASSANDRA_SSL=" ").cassandra.ssl is False


def test_env_example_documents_every_tls_variable() -> None:
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    values = parse(example)
    for key in (
        "STACK_TLS",
        "JVM_TRUSTSTORE",
        "JVM_TRUSTSTORE_PASSWORD_FILE",
        "KAFKA_TLS_PORT",
        "KAFKA_SSL_CAFILE",
        "CASSANDRA_SSL",
        "CASSANDRA_SSL_CAFILE",
        "MONGO_TLS",
        "MONGO_TLS_PORT",
        "MONGO_TLS_CAFILE",
    ):
        assert key in values, key
    assert values["STACK_TLS"] == "true"
    assert (values["CASSANDRA_SSL"], values["MONGO_TLS"]) == ("false", "false")
    assert values["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
