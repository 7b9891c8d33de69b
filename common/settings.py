"""One typed settings object, read once from the environment and `.env`.

Every process (producer, Spark driver, dashboard, ops tools, tests) builds its
connections from here; no host name or password lives anywhere else in code.
Invalid values fail at start-up with one line naming the variable.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from common import envfile


class SettingsError(ValueError):
    """A configuration value is missing or invalid (the message names it)."""


def env_int(env: Mapping[str, str], key: str, low: int, high: int, default: int | None = None) -> int:
    """An integer setting within low..high; a one-line SettingsError names the variable."""
    raw = env.get(key) or ("" if default is None else str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise SettingsError(f"{key}={value} is outside {low}..{high}")
    return value


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """A boolean setting (true/false, 1/0, yes/no, on/off); a one-line SettingsError names the variable."""
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise SettingsError(f"{key}={raw!r} must be true or false")


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value or value == envfile.GENERATED:
        raise SettingsError(f"{key} is not set (run `make env` or set it in .env)")
    return value


@dataclass(frozen=True)
class Account:
    user: str
    password: str

    def __repr__(self) -> str:  # never print a password, even by accident
        return f"Account(user={self.user!r}, password='***')"


@dataclass(frozen=True)
class JvmTruststore:
    """A PKCS12 trust store for JVM clients (Spark's Cassandra and Mongo connectors).

    The password stays in its file (0600) until a client needs it; it is never printed.
    """

    path: Path
    password_file: Path

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise SettingsError(
                f"JVM_TRUSTSTORE_PASSWORD_FILE {self.password_file} cannot be read ({exc.strerror}); "
                "run `make up` (STACK_TLS=true) to create it"
            ) from None

    def __repr__(self) -> str:
        return f"JvmTruststore(path={str(self.path)!r}, password_file={str(self.password_file)!r})"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    local: bool
    topic: str
    partitions: int
    replication: int
    retention_ms: int
    security_protocol: str
    sasl_mechanism: str
    admin: Account
    producer: Account
    job: Account
    job_group_prefix: str
    # SASL_SSL only: the CA bundle (PEM) that signed the brokers' certificates; "" = the system's CAs.
    ssl_cafile: str = ""

    @property
    def tls(self) -> bool:
        return self.security_protocol == "SASL_SSL"

    def client_config(self, account: Account) -> dict[str, Any]:
        """kafka-python keyword arguments for one account (TLS with hostname check under SASL_SSL)."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": account.user,
            "sasl_plain_password": account.password,
        }
        if self.tls:
            config["ssl_check_hostname"] = True
            if self.ssl_cafile:
                config["ssl_cafile"] = self.ssl_cafile
        return config

    def jvm_config(self, account: Account) -> dict[str, str]:
        """Java client properties for one account (Spark's Kafka source prefixes them with `kafka.`)."""
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.jaas.config": self.jaas(account),
        }
        if self.tls and self.ssl_cafile:
            # Java clients read a PEM CA file directly (KIP-651); hostname verification is on by default.
            config["ssl.truststore.type"] = "PEM"
            config["ssl.truststore.location"] = self.ssl_cafile
        return config

    def jaas(self, account: Account) -> str:
        """JAAS line for a JVM client (Spark's Kafka source)."""
        module = "org.apache.kafka.common.security.scram.ScramLoginModule"
        if self.sasl_mechanism == "PLAIN":
            module = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return f'{module} required username="{account.user}" password="{account.password}";'


@dataclass(frozen=True)
class CassandraSettings:
    hosts: tuple[str, ...]
    port: int
    local: bool
    local_dc: str
    keyspace: str
    replication: dict[str, object]
    admin: Account
    writer: Account
    reader: Account
    # TLS to the native port (CASSANDRA_SSL): the CA bundle for Python clients ("" = the
    # system's CAs) and the PKCS12 trust store for the Spark connector.
    ssl: bool = False
    ssl_cafile: str = ""
    jvm_truststore: JvmTruststore | None = None

    @property
    def replication_cql(self) -> str:
        parts = ", ".join(f"'{k}': {v!r}" for k, v in self.replication.items())
        return "{" + parts.replace('"', "'") + "}"


@dataclass(frozen=True)
class MongoSettings:
    host: str
    port: int
    local: bool
    database: str
    external_uri: str
    admin: Account
    writer: Account
    reader: Account
    # TLS (MONGO_TLS; the local server's TLS port is `port`): the CA bundle for pymongo
    # ("" = the system's CAs) and the PKCS12 trust store the Spark job installs in its JVM.
    tls: bool = False
    tls_cafile: str = ""
    jvm_truststore: JvmTruststore | None = None

    def uri(self, account: Account | None = None, *, jvm: bool = False) -> str:
        """Connection URI; with an external MONGO_URI it is used as given.

        jvm=True: for the Java driver (Spark connector), which has no tlsCAFile option; it
        trusts the JVM's trust store instead (jobs.io.session.spark_session installs it).
        """
        if self.external_uri:
            return self.external_uri
        auth = ""
        params: list[str] = []
        if account is not None:
            auth = f"{quote_plus(account.user)}:{quote_plus(account.password)}@"
            params += ["authMechanism=SCRAM-SHA-256", "authSource=admin"]
        if self.tls:
            params.append("tls=true")
            if self.tls_cafile and not jvm:
                params.append(f"tlsCAFile={quote_plus(self.tls_cafile)}")
        query = "?" + "&".join(params) if params else ""
        return f"mongodb://{auth}{self.host}:{self.port}/{query}"


@dataclass(frozen=True)
class StackSettings:
    root: Path
    stack_dir: Path
    cache_dir: Path
    bind_host: str
    kafka_heap: str
    cassandra_heap: str
    ferretdb_backend: str
    # STACK_TLS: the local servers also offer TLS to clients (certificates in tls_dir).
    tls: bool = True
    tls_dir: Path = Path(".stack/tls")


@dataclass(frozen=True)
class PseudonymSettings:
    key: bytes
    key_version: int

    def __repr__(self) -> str:
        return f"PseudonymSettings(key='***', key_version={self.key_version})"


@dataclass(frozen=True)
class Settings:
    env: Mapping[str, str]
    stack: StackSettings
    kafka: KafkaSettings
    cassandra: CassandraSettings
    mongo: MongoSettings
    pseudonym: PseudonymSettings

    def __repr__(self) -> str:
        return "Settings(...)"


def _account(env: Mapping[str, str], prefix: str) -> Account:
    return Account(_required(env, f"{prefix}_USER"), _required(env, f"{prefix}_PASSWORD"))


def from_mapping(env: Mapping[str, str], root: Path = envfile.PROJECT_ROOT) -> Settings:
    bind = env.get("STACK_BIND_HOST", "127.0.0.1") or "127.0.0.1"

    def path(key: str, default: str) -> Path:
        value = Path(env.get(key) or default)
        return value if value.is_absolute() else root / value

    backend = env.get("FERRETDB_BACKEND", "sqlite")
    if backend not in {"sqlite", "postgresql"}:
        raise SettingsError(f"FERRETDB_BACKEND={backend!r} must be sqlite or postgresql")
    stack_dir = path("STACK_DIR", ".stack")
    stack = StackSettings(
        root=root,
        stack_dir=stack_dir,
        cache_dir=path("STACK_CACHE_DIR", ".stack/cache"),
        bind_host=bind,
        kafka_heap=env.get("KAFKA_HEAP", "512m"),
        cassandra_heap=env.get("CASSANDRA_HEAP", "1G"),
        ferretdb_backend=backend,
        tls=env_bool(env, "STACK_TLS", True),
        tls_dir=stack_dir / "tls",
    )
    local_ca = str(stack.tls_dir / "ca.pem")
    truststore = JvmTruststore(
        path=path("JVM_TRUSTSTORE", str(stack.tls_dir / "truststore.p12")),
        password_file=path("JVM_TRUSTSTORE_PASSWORD_FILE", str(stack.tls_dir / "truststore.password")),
    )

    def cafile(key: str, local: bool) -> str:
        # Default: the local stack's CA for the local server, the system's CAs for an external one.
        value = (env.get(key) or "").strip()
        if value:
            return str(path(key, value))
        return local_ca if local else ""

    def needs_stack_tls(key: str, local: bool) -> None:
        if local and not stack.tls:
            raise SettingsError(f"{key} asks for TLS but STACK_TLS=false: the local server offers none")

    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    if protocol not in {"SASL_PLAINTEXT", "SASL_SSL"}:
        raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol!r} must be SASL_PLAINTEXT or SASL_SSL")
    mechanism = env.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    if mechanism not in {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"}:
        raise SettingsError(f"KAFKA_SASL_MECHANISM={mechanism!r} is not supported")
    kafka_tls = protocol == "SASL_SSL"
    if kafka_tls:
        needs_stack_tls("KAFKA_SECURITY_PROTOCOL=SASL_SSL", not bootstrap)
    kafka_port = env_int(env, "KAFKA_TLS_PORT", 1, 65535, 9094) if kafka_tls else 9092
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap or f"{bind}:{kafka_port}",
        local=not bootstrap,
        topic=env.get("KAFKA_TOPIC") or "random_user_data",
        partitions=env_int(env, "KAFKA_TOPIC_PARTITIONS", 1, 1000),
        replication=env_int(env, "KAFKA_TOPIC_REPLICATION", 1, 10),
        retention_ms=env_int(env, "KAFKA_RETENTION_MS", 60_000, 10**13),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        admin=_account(env, "KAFKA_ADMIN"),
        producer=_account(env, "KAFKA_PRODUCER"),
        job=_account(env, "KAFKA_JOB"),
        job_group_prefix=env.get("KAFKA_JOB_GROUP_PREFIX") or "random-user-job",
        ssl_cafile=cafile("KAFKA_SSL_CAFILE", not bootstrap) if kafka_tls else "",
    )

    hosts = tuple(h.strip() for h in env.get("CASSANDRA_HOSTS", "").split(",") if h.strip())
    try:
        replication = ast.literal_eval(env.get("CASSANDRA_REPLICATION") or "{}")
    except (ValueError, SyntaxError):
        raise SettingsError("CASSANDRA_REPLICATION is not a CQL map like {'class': ...}") from None
    if not isinstance(replication, dict) or "class" not in replication:
        raise SettingsError("CASSANDRA_REPLICATION must be a map with a 'class' key")
    cassandra_ssl = env_bool(env, "CASSANDRA_SSL", False)
    if cassandra_ssl:
        needs_stack_tls("CASSANDRA_SSL=true", not hosts)
    cassandra = CassandraSettings(
        hosts=hosts or (bind,),
        port=env_int(env, "CASSANDRA_PORT", 1, 65535),
        local=not hosts,
        local_dc=env.get("CASSANDRA_LOCAL_DC") or "datacenter1",
        keyspace=env.get("CASSANDRA_KEYSPACE") or "random_user_keyspace",
        replication=replication,
        admin=_account(env, "CASSANDRA_ADMIN"),
        writer=_account(env, "CASSANDRA_WRITER"),
        reader=_account(env, "CASSANDRA_READER"),
        ssl=cassandra_ssl,
        ssl_cafile=cafile("CASSANDRA_SSL_CAFILE", not hosts) if cassandra_ssl else "",
        jvm_truststore=truststore,
    )

    external_uri = env.get("MONGO_URI", "").strip()
    mongo_tls = env_bool(env, "MONGO_TLS", False)
    if mongo_tls:
        needs_stack_tls("MONGO_TLS=true", not external_uri)
    plain_port = env_int(env, "MONGO_PORT", 1, 65535)
    mongo = MongoSettings(
        host=bind,
        port=env_int(env, "MONGO_TLS_PORT", 1, 65535, 27018) if mongo_tls else plain_port,
        local=not external_uri,
        database=env.get("MONGO_DATABASE") or "randomUserDB",
        external_uri=external_uri,
        admin=_account(env, "MONGO_ADMIN"),
        writer=_account(env, "MONGO_WRITER"),
        reader=_account(env, "MONGO_READER"),
        tls=mongo_tls,
        tls_cafile=cafile("MONGO_TLS_CAFILE", not external_uri) if mongo_tls else "",
        jvm_truststore=truststore,
    )

    key_hex = _required(env, "PSEUDONYM_KEY")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise SettingsError("PSEUDONYM_KEY must be hex") from None
    if len(key) < 16:
        raise SettingsError("PSEUDONYM_KEY must be at least 16 bytes (32 hex digits)")
    pseudonym = PseudonymSettings(key=key, key_version=env_int(env, "PSEUDONYM_KEY_VERSION", 1, 10_000))
    return Settings(
        env=dict(env), stack=stack, kafka=kafka, cassandra=cassandra, mongo=mongo, pseudonym=pseudonym
    )


@dataclass(frozen=True)
class MonitoringSettings:
    """Prometheus and the JMX exporter agents (scripts/stack/prometheus.sh, ops/prometheus.py).

    Every metrics endpoint binds 127.0.0.1, whatever STACK_BIND_HOST says: none of them asks
    for a password. A port of 0 turns that JMX exporter agent off.
    """

    enabled: bool  # PROMETHEUS_ENABLED: `make up`/`make demo` also start Prometheus
    port: int  # PROMETHEUS_PORT
    scrape_interval_s: int  # PROMETHEUS_SCRAPE_INTERVAL_S (also the rule evaluation interval)
    retention_time: str  # PROMETHEUS_RETENTION_TIME, e.g. 2d
    retention_size: str  # PROMETHEUS_RETENTION_SIZE, e.g. 512MB
    memory_limit: str  # PROMETHEUS_MEMORY_LIMIT: Go's GOMEMLIMIT, e.g. 256MiB
    kafka_exporter_port: int  # KAFKA_JMX_EXPORTER_PORT
    cassandra_exporter_port: int  # CASSANDRA_JMX_EXPORTER_PORT
    ferretdb_debug_port: int  # FERRETDB_DEBUG_PORT: FerretDB's /debug/metrics
    producer_port: int  # PRODUCER_METRICS_PORT
    spark_ui_port: int  # SPARK_UI_PORT: the driver's /metrics/prometheus


_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
_SIZE = re.compile(r"^[0-9]+(B|KB|MB|GB|TB)$")
_GO_MEMORY = re.compile(r"^[0-9]+(B|KiB|MiB|GiB|TiB)$")


def monitoring_settings(env: Mapping[str, str]) -> MonitoringSettings:
    """The monitoring settings, defaults as in .env.example (a bad value names its variable)."""

    def matching(key: str, pattern: re.Pattern[str], default: str, example: str) -> str:
        value = (env.get(key) or default).strip()
        if not pattern.match(value):
            raise SettingsError(f"{key}={value!r} is not like {example}")
        return value

    return MonitoringSettings(
        enabled=env_bool(env, "PROMETHEUS_ENABLED", False),
        port=env_int(env, "PROMETHEUS_PORT", 1, 65535, 9090),
        scrape_interval_s=env_int(env, "PROMETHEUS_SCRAPE_INTERVAL_S", 1, 3600, 15),
        retention_time=matching("PROMETHEUS_RETENTION_TIME", _DURATION, "2d", "2d or 12h"),
        retention_size=matching("PROMETHEUS_RETENTION_SIZE", _SIZE, "512MB", "512MB"),
        memory_limit=matching("PROMETHEUS_MEMORY_LIMIT", _GO_MEMORY, "256MiB", "256MiB"),
        kafka_exporter_port=env_int(env, "KAFKA_JMX_EXPORTER_PORT", 0, 65535, 9404),
        cassandra_exporter_port=env_int(env, "CASSANDRA_JMX_EXPORTER_PORT", 0, 65535, 9405),
        ferretdb_debug_port=env_int(env, "FERRETDB_DEBUG_PORT", 1, 65535, 8088),
        producer_port=env_int(env, "PRODUCER_METRICS_PORT", 0, 65535, 9108),
        spark_ui_port=env_int(env, "SPARK_UI_PORT", 1, 65535, 4040),
    )


def load(root: Path = envfile.PROJECT_ROOT) -> Settings:
    """Settings from `.env` (created if missing) overlaid with the environment."""
    return from_mapping(envfile.load(root), root)


def eraser_account(env: Mapping[str, str]) -> Account | None:
    """CASSANDRA_ERASER_USER/PASSWORD, when configured (older .env files lack them)."""
    user, password = env.get("CASSANDRA_ERASER_USER", ""), env.get("CASSANDRA_ERASER_PASSWORD", "")
    if not user or not password or password == envfile.GENERATED:
        return None
    return Account(user, password)
