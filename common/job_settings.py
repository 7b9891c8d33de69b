"""Settings of the Spark jobs: the shared connection settings plus the job's own knobs.

Read once in the driver, validated with one-line errors, passed down explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from common import settings as common_settings
from common.settings import Settings, SettingsError

_INTERVAL = re.compile(r"^\d+(\.\d+)? (milliseconds?|seconds?|minutes?)$")
CONSISTENCY_LEVELS = {"ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL", "EACH_QUORUM"}


@dataclass(frozen=True)
class QuerySettings:
    """One streaming query of the job: its name (= its checkpoint folder), trigger and batch bound."""

    name: str
    trigger_interval: str
    max_offsets_per_trigger: int


SERVING, LAKE = "serving", "lake"


@dataclass(frozen=True)
class JobSettings:
    common: Settings
    lake_dir: Path
    checkpoint_dir: Path
    starting_offsets: str
    fail_on_data_loss: bool
    serving: QuerySettings
    lake: QuerySettings
    ui_port: int
    cassandra_write_consistency: str
    sink_stall_timeout_s: int = 600
    sink_concurrency: int = 3
    gold_full_recompute_every: int = 1000
    # Failed attempts of one micro-batch before it is processed in parts (jobs/poison_batches.py).
    poison_batch_attempts: int = 3

    def table(self, name: str) -> str:
        """Path of a Delta table of the lake (bronze, quarantine, silver, gold_*)."""
        return str(self.lake_dir / name)

    def checkpoint(self, query: str) -> Path:
        return self.checkpoint_dir / query

    @property
    def queries(self) -> tuple[QuerySettings, QuerySettings]:
        return (self.serving, self.lake)


def _path(root: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else root / path


def from_settings(settings: Settings) -> JobSettings:
    env = settings.env
    starting = env.get("KAFKA_STARTING_OFFSETS", "latest") or "latest"
    if starting not in {"latest", "earliest"} and not starting.startswith("{"):
        raise SettingsError(
            f"KAFKA_STARTING_OFFSETS={starting!r} must be latest, earliest or a JSON offsets map"
        )

    def interval(key: str, default: str) -> str:
        value = env.get(key, default) or default
        if not _INTERVAL.match(value):
            raise SettingsError(f"{key}={value!r} must look like '5 seconds' or '500 milliseconds'")
        return value

    consistency = (env.get("CASSANDRA_WRITE_CONSISTENCY", "LOCAL_QUORUM") or "LOCAL_QUORUM").upper()
    if consistency not in CONSISTENCY_LEVELS:
        raise SettingsError(
            f"CASSANDRA_WRITE_CONSISTENCY={consistency!r} is not one of {sorted(CONSISTENCY_LEVELS)}"
        )
    root = settings.stack.root
    return JobSettings(
        common=settings,
        lake_dir=_path(root, env.get("LAKE_DIR", "lake") or "lake"),
        checkpoint_dir=_path(root, env.get("CHECKPOINT_DIR", "checkpoints") or "checkpoints"),
        starting_offsets=starting,
        fail_on_data_loss=common_settings.env_bool(env, "KAFKA_FAIL_ON_DATA_LOSS", True),
        serving=QuerySettings(
            SERVING,
            interval("SERVING_TRIGGER_INTERVAL", "500 milliseconds"),
            common_settings.env_int(env, "SERVING_MAX_OFFSETS_PER_TRIGGER", 1, 10**9, 500),
        ),
        lake=QuerySettings(
            LAKE,
            interval("LAKE_TRIGGER_INTERVAL", "30 seconds"),
            common_settings.env_int(env, "LAKE_MAX_OFFSETS_PER_TRIGGER", 1, 10**9, 5000),
        ),
        ui_port=common_settings.env_int(env, "SPARK_UI_PORT", 1, 65535, 4040),
        cassandra_write_consistency=consistency,
        sink_stall_timeout_s=common_settings.env_int(env, "SINK_STALL_TIMEOUT_S", 30, 86_400, 600),
        sink_concurrency=common_settings.env_int(env, "SINK_CONCURRENCY", 1, 8, 3),
        gold_full_recompute_every=common_settings.env_int(env, "GOLD_FULL_RECOMPUTE_EVERY", 0, 10**9, 1000),
        poison_batch_attempts=common_settings.env_int(env, "POISON_BATCH_ATTEMPTS", 1, 100, 3),
    )


def load() -> JobSettings:
    return from_settings(common_settings.load())
