"""Producer settings: the environment (and `.env`), overridden by command-line flags.

Read and validated once at start; a bad value stops the producer with one line
naming the flag and the variable, before any connection is made.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from common.envfile import PROJECT_ROOT
from common.settings import EnvModel, OptionalPort, SettingsError

# The nationalities API 1.4 knows; anything else is ignored by the service.
NATIONALITIES = (
    "AU",
    "BR",
    "CA",
    "CH",
    "DE",
    "DK",
    "ES",
    "FI",
    "FR",
    "GB",
    "IE",
    "IN",
    "IR",
    "MX",
    "NL",
    "NO",
    "NZ",
    "RS",
    "TR",
    "UA",
    "US",
)
SOURCES = ("api", "local", "auto")
COMPRESSIONS = ("lz4", "gzip", "none")
# Above 5000 the service silently answers with ONE user: refuse it instead.
MAX_RESULTS = 5000
DEFAULT_API_URL = "https://randomuser.me/api/1.4/"


@dataclass(frozen=True)
class ProducerSettings:
    results: int
    interval_s: float
    nationalities: tuple[str, ...]
    seed: str | None
    api_url: str
    source: str
    rate: float | None
    malformed_rate: float
    metrics_port: int
    spool_dir: Path
    producer_id: str
    connect_timeout_s: float
    read_timeout_s: float
    backoff_base_s: float
    backoff_max_s: float
    memory_bound: int
    max_request_size: int
    compression: str
    delivery_timeout_ms: int
    max_batches: int | None
    flush_timeout_s: float


class ProducerEnv(EnvModel):
    """The producer's variables (PRODUCER_*, .env.example "Producer"), or its flags' values."""

    results: int = Field(10, ge=1, le=MAX_RESULTS, validation_alias="PRODUCER_RESULTS")
    interval_s: float = Field(10, ge=0.001, le=86_400, validation_alias="PRODUCER_INTERVAL_S")
    nationalities: str = Field("", validation_alias="PRODUCER_NATIONALITIES")
    seed: str = Field("", validation_alias="PRODUCER_SEED")
    api_url: str = Field(DEFAULT_API_URL, validation_alias="PRODUCER_API_URL")
    source: Literal["api", "local", "auto"] = Field("auto", validation_alias="PRODUCER_SOURCE")
    rate: float | None = Field(None, ge=0.001, le=10_000_000, validation_alias="PRODUCER_RATE")
    malformed_rate: float = Field(0, ge=0, le=1, validation_alias="PRODUCER_MALFORMED_RATE")
    metrics_port: OptionalPort = Field(9108, validation_alias="PRODUCER_METRICS_PORT")
    spool_dir: str = Field("spool", validation_alias="PRODUCER_SPOOL_DIR")
    producer_id: str = Field("", validation_alias="PRODUCER_ID")
    connect_timeout_s: float = Field(5, ge=0.01, le=600, validation_alias="PRODUCER_CONNECT_TIMEOUT_S")
    read_timeout_s: float = Field(30, ge=0.01, le=600, validation_alias="PRODUCER_READ_TIMEOUT_S")
    backoff_base_s: float = Field(1, ge=0.001, le=3600, validation_alias="PRODUCER_BACKOFF_BASE_S")
    backoff_max_s: float = Field(60, ge=0.001, le=3600, validation_alias="PRODUCER_BACKOFF_MAX_S")
    memory_bound: int = Field(100, ge=1, le=1_000_000, validation_alias="PRODUCER_MEMORY_BOUND")
    max_request_size: int = Field(
        1_048_576, ge=10_000, le=100 * 1024 * 1024, validation_alias="PRODUCER_MAX_REQUEST_SIZE"
    )
    compression: Literal["lz4", "gzip", "none"] = Field("lz4", validation_alias="PRODUCER_COMPRESSION")
    delivery_timeout_ms: int = Field(
        120_000, ge=1000, le=3_600_000, validation_alias="PRODUCER_DELIVERY_TIMEOUT_MS"
    )
    max_batches: int | None = Field(None, ge=1, le=10**12, validation_alias="PRODUCER_MAX_BATCHES")
    flush_timeout_s: float = Field(30, ge=0, le=3600, validation_alias="PRODUCER_FLUSH_TIMEOUT_S")
    # Only a variable: producer.py's --log-level flag comes before the settings are read.
    log_level: str = Field("INFO", validation_alias="PRODUCER_LOG_LEVEL")

    @field_validator("nationalities")
    @classmethod
    def _nationalities(cls, value: str) -> str:
        nats = [n.strip().upper() for n in value.split(",") if n.strip()]
        unknown = [n for n in nats if n not in NATIONALITIES]
        if unknown:
            raise ValueError(
                f"has unknown nationalities {','.join(unknown)} (known: {','.join(NATIONALITIES)})"
            )
        return ",".join(nats)

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("is not an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("producer_id")
    @classmethod
    def _producer_id(cls, value: str) -> str:
        value = value or f"producer-{socket.gethostname()}"
        if not all(c.isalnum() or c in "-_." for c in value) or len(value) > 100:
            raise ValueError("may only hold letters, digits, '-', '_' and '.'")
        return value

    @model_validator(mode="after")
    def _together(self) -> ProducerEnv:
        if self.rate is not None and self.source != "local":
            raise ValueError(
                "PRODUCER_RATE needs the local source (--source local): the API allows ~20,000 users/min"
            )
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(
                f"backoff max {self.backoff_max_s:g} s is below the base {self.backoff_base_s:g} s"
            )
        return self


# flag name -> (environment variable, help); the default shown is the model's.
_FLAGS: dict[str, tuple[str, str]] = {
    "results": ("PRODUCER_RESULTS", "users per API call / per message (1..5000)"),
    "interval": ("PRODUCER_INTERVAL_S", "seconds between calls (ignored with --rate)"),
    "nat": ("PRODUCER_NATIONALITIES", "comma-separated nationalities, e.g. GB,FR (empty: all 21)"),
    "seed": ("PRODUCER_SEED", "seed for reproducible users (API `seed`, generator seed)"),
    "api-url": ("PRODUCER_API_URL", "Random User API base URL"),
    "source": ("PRODUCER_SOURCE", "api | local | auto (API, local generator if it does not answer)"),
    "rate": ("PRODUCER_RATE", "load mode: users per second from the local generator"),
    "malformed-rate": ("PRODUCER_MALFORMED_RATE", "local source: share of users made malformed (0..1)"),
    "metrics-port": ("PRODUCER_METRICS_PORT", "Prometheus metrics port on 127.0.0.1 (0: off)"),
    "spool-dir": ("PRODUCER_SPOOL_DIR", "where batches wait while Kafka is down"),
    "producer-id": ("PRODUCER_ID", "this producer's id in every message (default: producer-HOSTNAME)"),
    "connect-timeout": ("PRODUCER_CONNECT_TIMEOUT_S", "API connect timeout, seconds"),
    "read-timeout": ("PRODUCER_READ_TIMEOUT_S", "API read timeout, seconds"),
    "backoff-base": ("PRODUCER_BACKOFF_BASE_S", "first retry delay, seconds (doubles, full jitter)"),
    "backoff-max": ("PRODUCER_BACKOFF_MAX_S", "retry delay cap, seconds"),
    "memory-bound": ("PRODUCER_MEMORY_BOUND", "batches kept in memory before spooling to disk"),
    "max-request-size": ("PRODUCER_MAX_REQUEST_SIZE", "largest Kafka message, bytes (split above)"),
    "compression": ("PRODUCER_COMPRESSION", "lz4 | gzip | none"),
    "delivery-timeout-ms": ("PRODUCER_DELIVERY_TIMEOUT_MS", "Kafka delivery timeout per attempt"),
    "max-batches": ("PRODUCER_MAX_BATCHES", "stop after this many batches (default: run forever)"),
    "flush-timeout": ("PRODUCER_FLUSH_TIMEOUT_S", "on exit, wait this long for Kafka before spooling"),
}


def _default_text(env_key: str) -> str:
    name = ProducerEnv.variables()[env_key]
    default = ProducerEnv.model_fields[name].default
    return "" if default is None else f"{default:g}" if isinstance(default, float) else str(default)


# flag name -> (environment variable, default as text, help)
OPTIONS: dict[str, tuple[str, str, str]] = {
    flag: (env_key, _default_text(env_key), text) for flag, (env_key, text) in _FLAGS.items()
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, (env_key, default, text) in OPTIONS.items():
        parser.add_argument(
            f"--{flag}", default=None, help=f"{text} [{env_key}, default {default or 'unset'}]"
        )


def from_sources(env: Mapping[str, str], args: argparse.Namespace | None = None) -> ProducerSettings:
    """Flags win over the environment, which wins over the defaults.

    A flag's value is read as its variable's would be; an error names the flag it came from."""
    values = dict(env)
    given: dict[str, str] = {}
    for flag, (env_key, _, _) in OPTIONS.items():
        cli = getattr(args, flag.replace("-", "_"), None) if args is not None else None
        if cli is not None:
            values[env_key] = str(cli).strip()
            given[env_key] = f"--{flag}"
    try:
        e = ProducerEnv.from_env(values)
    except SettingsError as exc:
        lines = str(exc).splitlines()
        for env_key, flag in given.items():
            lines = [
                flag + line.removeprefix(env_key) if line.startswith(env_key) else line for line in lines
            ]
        raise SettingsError("\n".join(lines)) from None
    spool = Path(e.spool_dir)
    return ProducerSettings(
        results=e.results,
        interval_s=e.interval_s,
        nationalities=tuple(n for n in e.nationalities.split(",") if n),
        seed=e.seed or None,
        api_url=e.api_url,
        source=e.source,
        rate=e.rate,
        malformed_rate=e.malformed_rate,
        metrics_port=e.metrics_port,
        spool_dir=spool if spool.is_absolute() else PROJECT_ROOT / spool,
        producer_id=e.producer_id,
        connect_timeout_s=e.connect_timeout_s,
        read_timeout_s=e.read_timeout_s,
        backoff_base_s=e.backoff_base_s,
        backoff_max_s=e.backoff_max_s,
        memory_bound=e.memory_bound,
        max_request_size=e.max_request_size,
        compression=e.compression,
        delivery_timeout_ms=e.delivery_timeout_ms,
        max_batches=e.max_batches,
        flush_timeout_s=e.flush_timeout_s,
    )


def parse(argv: Sequence[str] | None, env: Mapping[str, str]) -> ProducerSettings:
    parser = argparse.ArgumentParser(prog="producer.py", description="Random User API -> Kafka")
    add_arguments(parser)
    return from_sources(env, parser.parse_args(argv))
