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

from common.envfile import PROJECT_ROOT
from common.settings import SettingsError

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


# flag name -> (environment variable, default as text, help)
OPTIONS: dict[str, tuple[str, str, str]] = {
    "results": ("PRODUCER_RESULTS", "10", "users per API call / per message (1..5000)"),
    "interval": ("PRODUCER_INTERVAL_S", "10", "seconds between calls (ignored with --rate)"),
    "nat": ("PRODUCER_NATIONALITIES", "", "comma-separated nationalities, e.g. GB,FR (empty: all 21)"),
    "seed": ("PRODUCER_SEED", "", "seed for reproducible users (API `seed`, generator seed)"),
    "api-url": ("PRODUCER_API_URL", DEFAULT_API_URL, "Random User API base URL"),
    "source": ("PRODUCER_SOURCE", "auto", "api | local | auto (API, local generator if it does not answer)"),
    "rate": ("PRODUCER_RATE", "", "load mode: users per second from the local generator"),
    "malformed-rate": ("PRODUCER_MALFORMED_RATE", "0", "local source: share of users made malformed (0..1)"),
    "metrics-port": ("PRODUCER_METRICS_PORT", "9108", "Prometheus metrics port on 127.0.0.1 (0: off)"),
    "spool-dir": ("PRODUCER_SPOOL_DIR", "spool", "where batches wait while Kafka is down"),
    "producer-id": ("PRODUCER_ID", "", "this producer's id in every message (default: producer-HOSTNAME)"),
    "connect-timeout": ("PRODUCER_CONNECT_TIMEOUT_S", "5", "API connect timeout, seconds"),
    "read-timeout": ("PRODUCER_READ_TIMEOUT_S", "30", "API read timeout, seconds"),
    "backoff-base": ("PRODUCER_BACKOFF_BASE_S", "1", "first retry delay, seconds (doubles, full jitter)"),
    "backoff-max": ("PRODUCER_BACKOFF_MAX_S", "60", "retry delay cap, seconds"),
    "memory-bound": ("PRODUCER_MEMORY_BOUND", "100", "batches kept in memory before spooling to disk"),
    "max-request-size": (
        "PRODUCER_MAX_REQUEST_SIZE",
        "1048576",
        "largest Kafka message, bytes (split above)",
    ),
    "compression": ("PRODUCER_COMPRESSION", "lz4", "lz4 | gzip | none"),
    "delivery-timeout-ms": ("PRODUCER_DELIVERY_TIMEOUT_MS", "120000", "Kafka delivery timeout per attempt"),
    "max-batches": ("PRODUCER_MAX_BATCHES", "", "stop after this many batches (default: run forever)"),
    "flush-timeout": ("PRODUCER_FLUSH_TIMEOUT_S", "30", "on exit, wait this long for Kafka before spooling"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, (env_key, default, text) in OPTIONS.items():
        parser.add_argument(
            f"--{flag}", default=None, help=f"{text} [{env_key}, default {default or 'unset'}]"
        )


def _number(name: str, raw: str, kind: type[int] | type[float], low: float, high: float) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw} is outside {low:g}..{high:g}")
    return value


def from_sources(env: Mapping[str, str], args: argparse.Namespace | None = None) -> ProducerSettings:
    """Flags win over the environment, which wins over the defaults."""

    def raw(flag: str) -> tuple[str, str]:
        env_key, default, _ = OPTIONS[flag]
        cli = getattr(args, flag.replace("-", "_"), None) if args is not None else None
        if cli is not None:
            return f"--{flag}", str(cli).strip()
        if env.get(env_key, "").strip():
            return env_key, env[env_key].strip()
        return env_key, default

    def integer(flag: str, low: float, high: float) -> int:
        return int(_number(*raw(flag), int, low, high))

    def real(flag: str, low: float, high: float) -> float:
        return float(_number(*raw(flag), float, low, high))

    name, results_raw = raw("results")
    results = int(_number(name, results_raw, int, 1, MAX_RESULTS))

    name, nat_raw = raw("nat")
    nats = tuple(n.strip().upper() for n in nat_raw.split(",") if n.strip())
    unknown = [n for n in nats if n not in NATIONALITIES]
    if unknown:
        raise SettingsError(
            f"{name}: unknown nationalities {','.join(unknown)} (known: {','.join(NATIONALITIES)})"
        )

    name, source = raw("source")
    if source not in SOURCES:
        raise SettingsError(f"{name}={source!r} must be one of {', '.join(SOURCES)}")
    name, rate_raw = raw("rate")
    rate = None
    if rate_raw:
        rate = _number(name, rate_raw, float, 0.001, 10_000_000)
        if source != "local":
            raise SettingsError(
                f"{name} needs the local source (--source local): the API allows ~20,000 users/min"
            )

    name, url = raw("api-url")
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"{name}={url!r} is not an http(s) URL")

    name, compression = raw("compression")
    if compression not in COMPRESSIONS:
        raise SettingsError(f"{name}={compression!r} must be one of {', '.join(COMPRESSIONS)}")

    name, spool_raw = raw("spool-dir")
    spool = Path(spool_raw)
    if not spool.is_absolute():
        spool = PROJECT_ROOT / spool

    name, producer_id = raw("producer-id")
    producer_id = producer_id or f"producer-{socket.gethostname()}"
    if not all(c.isalnum() or c in "-_." for c in producer_id) or len(producer_id) > 100:
        raise SettingsError(f"{name}={producer_id!r} may only hold letters, digits, '-', '_' and '.'")

    name, max_batches_raw = raw("max-batches")
    max_batches = int(_number(name, max_batches_raw, int, 1, 10**12)) if max_batches_raw else None

    backoff_base = real("backoff-base", 0.001, 3600)
    backoff_max = real("backoff-max", 0.001, 3600)
    if backoff_max < backoff_base:
        raise SettingsError(f"backoff max {backoff_max:g} s is below the base {backoff_base:g} s")

    _, seed = raw("seed")
    return ProducerSettings(
        results=results,
        interval_s=real("interval", 0.001, 86_400),
        nationalities=nats,
        seed=seed or None,
        api_url=url if url.endswith("/") else url + "/",
        source=source,
        rate=rate,
        malformed_rate=real("malformed-rate", 0, 1),
        metrics_port=integer("metrics-port", 0, 65535),
        spool_dir=spool,
        producer_id=producer_id,
        connect_timeout_s=real("connect-timeout", 0.01, 600),
        read_timeout_s=real("read-timeout", 0.01, 600),
        backoff_base_s=backoff_base,
        backoff_max_s=backoff_max,
        memory_bound=integer("memory-bound", 1, 1_000_000),
        max_request_size=integer("max-request-size", 10_000, 100 * 1024 * 1024),
        compression=compression,
        delivery_timeout_ms=integer("delivery-timeout-ms", 1000, 3_600_000),
        max_batches=max_batches,
        flush_timeout_s=real("flush-timeout", 0, 3600),
    )


def parse(argv: Sequence[str] | None, env: Mapping[str, str]) -> ProducerSettings:
    parser = argparse.ArgumentParser(prog="producer.py", description="Random User API -> Kafka")
    add_arguments(parser)
    return from_sources(env, parser.parse_args(argv))
