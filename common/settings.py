"""One typed settings object, read once from the environment and `.env`.

Every process (producer, Spark driver, dashboard, ops tools, tests) builds its
connections from here; no host name or password lives anywhere else in code.
Invalid values fail at start-up with one line naming the variable.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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

    def client_config(self, account: Account) -> dict[str, str]:
        """kafka-python keyword arguments for one account."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": account.user,
            "sasl_plain_password": account.password,
        }

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

    def uri(self, account: Account | None = None) -> str:
        """Connection URI; with an external MONGO_URI it is used as given."""
        if self.external_uri:
            return self.external_uri
        auth = ""
        if account is not None:
            auth = f"{quote_plus(account.user)}:{quote_plus(account.password)}@"
        params = "?authMechanism=SCRAM-SHA-256&authSource=admin" if account else ""
        return f"mongodb://{auth}{self.host}:{self.port}/{params}"


@dataclass(frozen=True)
class StackSettings:
    root: Path
    stack_dir: Path
    cache_dir: Path
    bind_host: str
    kafka_heap: str
    cassandra_heap: str
    ferretdb_backend: str


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
    stack = StackSettings(
        root=root,
        stack_dir=path("STACK_DIR", ".stack"),
        cache_dir=path("STACK_CACHE_DIR", ".stack/cache"),
        bind_host=bind,
        kafka_heap=env.get("KAFKA_HEAP", "512m"),
        cassandra_heap=env.get("CASSANDRA_HEAP", "1G"),
        ferretdb_backend=backend,
    )

    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    if protocol not in {"SASL_PLAINTEXT", "SASL_SSL"}:
        raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol!r} must be SASL_PLAINTEXT or SASL_SSL")
    mechanism = env.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    if mechanism not in {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"}:
        raise SettingsError(f"KAFKA_SASL_MECHANISM={mechanism!r} is not supported")
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap or f"{bind}:9092",
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
    )

    hosts = tuple(h.strip() for h in env.get("CASSANDRA_HOSTS", "").split(",") if h.strip())
    try:
        replication = ast.literal_eval(env.get("CASSANDRA_REPLICATION") or "{}")
    except (ValueError, SyntaxError):
        raise SettingsError("CASSANDRA_REPLICATION is not a CQL map like {'class': ...}") from None
    if not isinstance(replication, dict) or "class" not in replication:
        raise SettingsError("CASSANDRA_REPLICATION must be a map with a 'class' key")
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
    )

    external_uri = env.get("MONGO_URI", "").strip()
    mongo = MongoSettings(
        host=bind,
        port=env_int(env, "MONGO_PORT", 1, 65535),
        local=not external_uri,
        database=env.get("MONGO_DATABASE") or "randomUserDB",
        external_uri=external_uri,
        admin=_account(env, "MONGO_ADMIN"),
        writer=_account(env, "MONGO_WRITER"),
        reader=_account(env, "MONGO_READER"),
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


def load(root: Path = envfile.PROJECT_ROOT) -> Settings:
    """Settings from `.env` (created if missing) overlaid with the environment."""
    return from_mapping(envfile.load(root), root)
