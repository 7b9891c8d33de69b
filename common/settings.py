"""Typed settings, read once from the environment over `.env` and validated by pydantic.

Every process (producer, Spark driver, dashboard, ops tools, tests) builds its
connections from here; no host name or password lives anywhere else in code.

Each component has one settings model (an `EnvModel`: pydantic-settings reads its fields
from the variables of the same name, upper case); this module holds the shared ones
(`CommonEnv`: stack, Kafka, Cassandra, Mongo, pseudonyms; `MonitoringSettings`;
`GovernanceSettings`). Secrets are `SecretStr`: their repr is `'**********'`, and
`.get_secret_value()` is called only where a client needs the password.
Invalid values fail at start-up with one line per value naming the variable, the value
(never a secret's) and what is allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from urllib.parse import quote_plus

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from common import envfile


class SettingsError(ValueError):
    """A configuration value is missing or invalid (the message names it)."""


# --- The base of every component's model ---------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _flag(value: object) -> object:
    """true/false, 1/0, yes/no, on/off (any case): pydantic's own bool also takes t/y/f/n."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise PydanticCustomError("bool_parsing", "must be true or false")
    return value


def _not_generated(value: str) -> str:
    if value == envfile.GENERATED:
        raise PydanticCustomError("missing", "not set")
    return value


def _secret_not_generated(value: SecretStr) -> SecretStr:
    if value.get_secret_value() == envfile.GENERATED:
        raise PydanticCustomError("missing", "not set")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
Stripped = Annotated[str, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A port where 0 turns the endpoint off.
OptionalPort = Annotated[int, Field(ge=0, le=65535)]
# A value `.env.example` writes as <generated> (or that must be set): refused while it is.
Required = Annotated[str, AfterValidator(_not_generated)]
Secret = Annotated[SecretStr, AfterValidator(_secret_not_generated)]
# Small counts: a viewer of the dashboard and every export show counts below this as "< k".
MinCount = Annotated[int, Field(ge=1, le=1_000_000)]

# The variables of the model being read (see EnvModel.from_env).
_SOURCE: ContextVar[Mapping[str, str] | None] = ContextVar("settings_source", default=None)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping (`.env` overlaid with the
    environment by common.envfile, or a test's dict) instead of os.environ. Blank values
    count as unset, as they always did here."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]) -> None:
        self._values = {k: v for k, v in values.items() if v.strip()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._values.items()}


class EnvModel(BaseSettings):
    """A component's settings: each field is read from its variable (the field's alias, else
    its name in upper case). Build one with `from_env(mapping)`: errors become SettingsError."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, hide_input_in_errors=True
    )
    # Shown after "is not like" when a pattern does not match, per field name.
    examples: ClassVar[dict[str, str]] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        values = _SOURCE.get()
        if values is None:  # built directly: the environment over `.env`, as everywhere
            values = envfile.load()
        return (init_settings, _MappingSource(settings_cls, values))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """The model from `env` (`.env` overlaid with the environment, or a test's dict)."""
        with _reading(env):
            try:
                return cls()
            except ValidationError as exc:
                raise SettingsError(explain(exc, cls, env)) from None

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Variable name -> field name, for every field (what .env.example documents)."""
        return {variable(name, info): name for name, info in cls.model_fields.items()}


@contextmanager
def _reading(env: Mapping[str, str]) -> Iterator[None]:
    token = _SOURCE.set(env)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def variable(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias if isinstance(info.validation_alias, str) else None
    return (alias or name).upper()


def _bounds(info: FieldInfo) -> tuple[object, object]:
    low: object = None
    high: object = None
    for meta in info.metadata:
        low = getattr(meta, "ge", getattr(meta, "gt", low))
        high = getattr(meta, "le", getattr(meta, "lt", high))
    return low, high


def _choices(info: FieldInfo) -> str:
    values = [str(v) for v in get_args(info.annotation)]
    if len(values) == 2:
        return f"must be {values[0]} or {values[1]}"
    return f"must be one of {', '.join(values)}"


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def explain(exc: ValidationError, model: type[EnvModel], env: Mapping[str, str]) -> str:
    """pydantic's multi-line report as one line per invalid value: the variable, the value
    (never a secret's) and what is allowed. The model's own checks (loc ()) say it all."""
    by_var = {variable(name, info): (name, info) for name, info in model.model_fields.items()}
    by_name = {name: (name, info) for name, info in model.model_fields.items()}
    lines = []
    for err in exc.errors(include_input=False):
        loc = str(err["loc"][0]) if err["loc"] else ""
        found = by_name.get(loc) or by_var.get(loc.upper())
        if found is None:
            lines.append(str(err.get("ctx", {}).get("error", err["msg"])).removeprefix("Value error, "))
            continue
        name, info = found
        var = variable(name, info)
        kind = err["type"]
        raw = env.get(var, "")
        secret = info.annotation is SecretStr
        shown = "" if secret else f"={raw!r}"
        if kind == "missing":
            lines.append(f"{var} is not set (run `make env` or set it in .env)")
        elif kind == "int_parsing":
            lines.append(f"{var}{shown} is not an integer")
        elif kind == "float_parsing":
            lines.append(f"{var}{shown} is not a number")
        elif kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
            low, high = _bounds(info)
            if high is None:
                lines.append(
                    f"{var}={raw.strip()} must be {'above' if kind == 'greater_than' else 'at least'} "
                    f"{_number(low)}"
                )
            else:
                lines.append(f"{var}={raw.strip()} is outside {_number(low)}..{_number(high)}")
        elif kind == "literal_error":
            lines.append(f"{var}{shown} {_choices(info)}")
        elif kind == "string_pattern_mismatch":
            lines.append(f"{var}{shown} is not like {model.examples.get(name, info.description or '')}")
        else:  # bool_parsing, value_error and the models' own messages
            lines.append(f"{var}{shown} {str(err['msg']).removeprefix('Value error, ')}")
    return "\n".join(lines)


# --- The shared connection settings ---------------------------------------------------------


def _cql_map(value: str) -> str:
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise ValueError("is not a CQL map like {'class': ...}") from None
    if not isinstance(parsed, dict) or "class" not in parsed:
        raise ValueError("must be a map with a 'class' key")
    return value


def _hex_key(value: SecretStr) -> SecretStr:
    try:
        key = bytes.fromhex(value.get_secret_value())
    except ValueError:
        raise ValueError("must be hex") from None
    if len(key) < 16:
        raise ValueError("must be at least 16 bytes (32 hex digits)")
    return value


class ExternalServers(EnvModel):
    """Where the servers are: empty = the local stack's (ops.prometheus scrapes only those)."""

    kafka_bootstrap_servers: str = ""
    cassandra_hosts: str = ""
    mongo_uri: str = ""

    @field_validator("kafka_bootstrap_servers", "cassandra_hosts", "mongo_uri", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class Names(EnvModel):
    """The names of the stack's resources and accounts, defaults as in .env.example: what the
    access matrix (ops.access_matrix) is filled in with, even from an empty environment."""

    kafka_topic: str = "random_user_data"
    kafka_job_group_prefix: str = "random-user-job"
    cassandra_keyspace: str = "random_user_keyspace"
    mongo_database: str = "randomUserDB"
    kafka_admin_user: str = "admin"
    kafka_producer_user: str = "producer"
    kafka_job_user: str = "spark_job"
    cassandra_admin_user: str = "rua_admin"
    cassandra_writer_user: str = "spark_writer"
    cassandra_reader_user: str = "dashboard_reader"
    cassandra_eraser_user: str = "eraser"
    mongo_admin_user: str = "rua_admin"
    mongo_writer_user: str = "spark_writer"
    mongo_reader_user: str = "reader"


class CommonEnv(Names, ExternalServers):
    """The variables of the shared settings (stack, Kafka, Cassandra, Mongo, pseudonyms).

    The accounts' names have no default here: every process needs them set (in .env)."""

    stack_dir: str = ".stack"
    stack_cache_dir: str = ".stack/cache"
    stack_bind_host: str = "127.0.0.1"
    kafka_heap: str = "512m"
    cassandra_heap: str = "1G"
    ferretdb_backend: Literal["sqlite", "postgresql"] = "sqlite"
    stack_tls: Flag = True
    jvm_truststore: str = ""
    jvm_truststore_password_file: str = ""

    kafka_topic_partitions: Annotated[int, Field(ge=1, le=1000)]
    kafka_topic_replication: Annotated[int, Field(ge=1, le=10)]
    kafka_retention_ms: Annotated[int, Field(ge=60_000, le=10**13)]
    kafka_security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-256"
    kafka_tls_port: Port = 9094
    kafka_ssl_cafile: str = ""
    kafka_admin_user: Required
    kafka_admin_password: Secret
    kafka_producer_user: Required
    kafka_producer_password: Secret
    kafka_job_user: Required
    kafka_job_password: Secret

    cassandra_port: Port
    cassandra_local_dc: str = "datacenter1"
    cassandra_replication: Annotated[str, AfterValidator(_cql_map)]
    cassandra_ssl: Flag = False
    cassandra_ssl_cafile: str = ""
    cassandra_admin_user: Required
    cassandra_admin_password: Secret
    cassandra_writer_user: Required
    cassandra_writer_password: Secret
    cassandra_reader_user: Required
    cassandra_reader_password: Secret

    mongo_port: Port
    mongo_tls: Flag = False
    mongo_tls_port: Port = 27018
    mongo_tls_cafile: str = ""
    mongo_admin_user: Required
    mongo_admin_password: Secret
    mongo_writer_user: Required
    mongo_writer_password: Secret
    mongo_reader_user: Required
    mongo_reader_password: Secret

    pseudonym_key: Annotated[Secret, AfterValidator(_hex_key)]
    pseudonym_key_version: Annotated[int, Field(ge=1, le=10_000)]


@dataclass(frozen=True)
class Account:
    user: str
    password: SecretStr  # .get_secret_value() only where a client logs in

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
            "sasl_plain_password": account.password.get_secret_value(),
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
        return (
            f'{module} required username="{account.user}" password="{account.password.get_secret_value()}";'
        )


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
            auth = f"{quote_plus(account.user)}:{quote_plus(account.password.get_secret_value())}@"
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


def _account(e: CommonEnv, prefix: str) -> Account:
    user: str = getattr(e, f"{prefix}_user")
    password: SecretStr = getattr(e, f"{prefix}_password")
    return Account(user, password)


def from_mapping(env: Mapping[str, str], root: Path = envfile.PROJECT_ROOT) -> Settings:
    """The shared settings from `env` (`.env` overlaid with the environment, or a test's dict)."""
    e = CommonEnv.from_env(env)

    def path(value: str, default: str) -> Path:
        result = Path(value or default)
        return result if result.is_absolute() else root / result

    stack_dir = path(e.stack_dir, ".stack")
    stack = StackSettings(
        root=root,
        stack_dir=stack_dir,
        cache_dir=path(e.stack_cache_dir, ".stack/cache"),
        bind_host=e.stack_bind_host,
        kafka_heap=e.kafka_heap,
        cassandra_heap=e.cassandra_heap,
        ferretdb_backend=e.ferretdb_backend,
        tls=e.stack_tls,
        tls_dir=stack_dir / "tls",
    )
    bind = stack.bind_host
    local_ca = str(stack.tls_dir / "ca.pem")
    truststore = JvmTruststore(
        path=path(e.jvm_truststore, str(stack.tls_dir / "truststore.p12")),
        password_file=path(e.jvm_truststore_password_file, str(stack.tls_dir / "truststore.password")),
    )

    def cafile(value: str, local: bool) -> str:
        # Default: the local stack's CA for the local server, the system's CAs for an external one.
        if value.strip():
            return str(path(value.strip(), ""))
        return local_ca if local else ""

    def needs_stack_tls(key: str, local: bool) -> None:
        if local and not stack.tls:
            raise SettingsError(f"{key} asks for TLS but STACK_TLS=false: the local server offers none")

    bootstrap = e.kafka_bootstrap_servers
    kafka_tls = e.kafka_security_protocol == "SASL_SSL"
    if kafka_tls:
        needs_stack_tls("KAFKA_SECURITY_PROTOCOL=SASL_SSL", not bootstrap)
    kafka_port = e.kafka_tls_port if kafka_tls else 9092
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap or f"{bind}:{kafka_port}",
        local=not bootstrap,
        topic=e.kafka_topic,
        partitions=e.kafka_topic_partitions,
        replication=e.kafka_topic_replication,
        retention_ms=e.kafka_retention_ms,
        security_protocol=e.kafka_security_protocol,
        sasl_mechanism=e.kafka_sasl_mechanism,
        admin=_account(e, "kafka_admin"),
        producer=_account(e, "kafka_producer"),
        job=_account(e, "kafka_job"),
        job_group_prefix=e.kafka_job_group_prefix,
        ssl_cafile=cafile(e.kafka_ssl_cafile, not bootstrap) if kafka_tls else "",
    )

    hosts = tuple(h.strip() for h in e.cassandra_hosts.split(",") if h.strip())
    if e.cassandra_ssl:
        needs_stack_tls("CASSANDRA_SSL=true", not hosts)
    cassandra = CassandraSettings(
        hosts=hosts or (bind,),
        port=e.cassandra_port,
        local=not hosts,
        local_dc=e.cassandra_local_dc,
        keyspace=e.cassandra_keyspace,
        replication=ast.literal_eval(e.cassandra_replication),
        admin=_account(e, "cassandra_admin"),
        writer=_account(e, "cassandra_writer"),
        reader=_account(e, "cassandra_reader"),
        ssl=e.cassandra_ssl,
        ssl_cafile=cafile(e.cassandra_ssl_cafile, not hosts) if e.cassandra_ssl else "",
        jvm_truststore=truststore,
    )

    external_uri = e.mongo_uri
    if e.mongo_tls:
        needs_stack_tls("MONGO_TLS=true", not external_uri)
    mongo = MongoSettings(
        host=bind,
        port=e.mongo_tls_port if e.mongo_tls else e.mongo_port,
        local=not external_uri,
        database=e.mongo_database,
        external_uri=external_uri,
        admin=_account(e, "mongo_admin"),
        writer=_account(e, "mongo_writer"),
        reader=_account(e, "mongo_reader"),
        tls=e.mongo_tls,
        tls_cafile=cafile(e.mongo_tls_cafile, not external_uri) if e.mongo_tls else "",
        jvm_truststore=truststore,
    )

    pseudonym = PseudonymSettings(
        key=bytes.fromhex(e.pseudonym_key.get_secret_value()), key_version=e.pseudonym_key_version
    )
    return Settings(
        env=dict(env), stack=stack, kafka=kafka, cassandra=cassandra, mongo=mongo, pseudonym=pseudonym
    )


_DELTA_INTERVAL = r"^interval \d+ (hours?|days?|weeks?)$"
# Prometheus's duration and size units, and Go's memory limit units.
_DURATION = r"^[0-9]+(ms|s|m|h|d|w|y)$"
_SIZE = r"^[0-9]+(B|KB|MB|GB|TB)$"
_GO_MEMORY = r"^[0-9]+(B|KiB|MiB|GiB|TiB)$"


class MonitoringSettings(EnvModel):
    """Prometheus and the JMX exporter agents (scripts/stack/prometheus.sh, ops/prometheus.py).

    Every metrics endpoint binds 127.0.0.1, whatever STACK_BIND_HOST says: none of them asks
    for a password. A port of 0 turns that JMX exporter agent off.
    """

    examples: ClassVar[dict[str, str]] = {
        "retention_time": "2d or 12h",
        "retention_size": "512MB",
        "memory_limit": "256MiB",
    }

    # `make up`/`make demo` also start Prometheus
    enabled: Flag = Field(False, validation_alias="PROMETHEUS_ENABLED")
    port: Port = Field(9090, validation_alias="PROMETHEUS_PORT")
    # also the rule evaluation interval
    scrape_interval_s: int = Field(15, ge=1, le=3600, validation_alias="PROMETHEUS_SCRAPE_INTERVAL_S")
    retention_time: str = Field("2d", pattern=_DURATION, validation_alias="PROMETHEUS_RETENTION_TIME")
    retention_size: str = Field("512MB", pattern=_SIZE, validation_alias="PROMETHEUS_RETENTION_SIZE")
    # Go's GOMEMLIMIT
    memory_limit: str = Field("256MiB", pattern=_GO_MEMORY, validation_alias="PROMETHEUS_MEMORY_LIMIT")
    kafka_exporter_port: OptionalPort = Field(9404, validation_alias="KAFKA_JMX_EXPORTER_PORT")
    cassandra_exporter_port: OptionalPort = Field(9405, validation_alias="CASSANDRA_JMX_EXPORTER_PORT")
    # FerretDB's /debug/metrics
    ferretdb_debug_port: Port = Field(8088, validation_alias="FERRETDB_DEBUG_PORT")
    producer_port: OptionalPort = Field(9108, validation_alias="PRODUCER_METRICS_PORT")
    # the driver's /metrics/prometheus
    spark_ui_port: Port = Field(4040, validation_alias="SPARK_UI_PORT")


def monitoring_settings(env: Mapping[str, str]) -> MonitoringSettings:
    """The monitoring settings, defaults as in .env.example (a bad value names its variable)."""
    return MonitoringSettings.from_env(env)


class GovernanceSettings(EnvModel):
    """Erasure, retention, exports and small counts (docs/GOVERNANCE.md). Read only by the
    tools that need them (jobs.erase, ops.purge, jobs.retention, jobs.export, the dashboard)."""

    examples: ClassVar[dict[str, str]] = {
        "delta_deleted_file_retention": "'interval 7 days'",
        "delta_log_retention": "'interval 30 days'",
    }

    cassandra_eraser_user: str = ""
    cassandra_eraser_password: SecretStr = SecretStr("")
    mongo_retention_days: int = Field(30, ge=1)
    delta_deleted_file_retention: Stripped = Field("interval 7 days", pattern=_DELTA_INTERVAL)
    delta_log_retention: Stripped = Field("interval 30 days", pattern=_DELTA_INTERVAL)
    export_log: str = "logs/exports.jsonl"
    # The dashboard's threshold (dashboard.settings.DashboardEnv), applied to every export too.
    dashboard_min_count: MinCount = 5

    @property
    def eraser(self) -> Account | None:
        """CASSANDRA_ERASER_USER/PASSWORD, when configured (older .env files lack them)."""
        password = self.cassandra_eraser_password.get_secret_value()
        if not self.cassandra_eraser_user or not password or password == envfile.GENERATED:
            return None
        return Account(self.cassandra_eraser_user, self.cassandra_eraser_password)


def governance_settings(env: Mapping[str, str]) -> GovernanceSettings:
    return GovernanceSettings.from_env(env)


def load(root: Path = envfile.PROJECT_ROOT) -> Settings:
    """Settings from `.env` (created if missing) overlaid with the environment."""
    return from_mapping(envfile.load(root), root)


def eraser_account(env: Mapping[str, str]) -> Account | None:
    """CASSANDRA_ERASER_USER/PASSWORD, when configured (older .env files lack them)."""
    return governance_settings(env).eraser
