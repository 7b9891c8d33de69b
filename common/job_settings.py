"""Settings of the Spark jobs: the shared connection settings plus the job's own knobs.

Read once in the driver (the model JobEnv: pydantic, one line per invalid value), passed
down explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator

from common import settings as common_settings
from common.settings import EnvModel, Flag, Port, Settings

_INTERVAL = r"^\d+(\.\d+)? (milliseconds?|seconds?|minutes?)$"

# Variables an earlier version read, and what took their place. A `.env` made then keeps
# them (envfile.ensure only appends what is new), so a value set there would be ignored
# without a word: the job names each one it finds (retired()).
RETIRED: dict[str, str] = {
    "TRIGGER_INTERVAL": "SERVING_TRIGGER_INTERVAL and LAKE_TRIGGER_INTERVAL",
    "KAFKA_MAX_OFFSETS_PER_TRIGGER": "SERVING_MAX_OFFSETS_PER_TRIGGER and LAKE_MAX_OFFSETS_PER_TRIGGER",
}
Consistency = Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL", "EACH_QUORUM"]
Upper = BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)


class JobEnv(EnvModel):
    """The variables of the Spark jobs' own knobs (.env.example, "Streaming job")."""

    examples: ClassVar[dict[str, str]] = {
        "serving_trigger_interval": "'5 seconds' or '500 milliseconds'",
        "lake_trigger_interval": "'5 seconds' or '500 milliseconds'",
    }

    lake_dir: str = "lake"
    checkpoint_dir: str = "checkpoints"
    kafka_starting_offsets: str = "latest"
    kafka_fail_on_data_loss: Flag = True
    serving_trigger_interval: str = Field("500 milliseconds", pattern=_INTERVAL)
    lake_trigger_interval: str = Field("30 seconds", pattern=_INTERVAL)
    serving_max_offsets_per_trigger: int = Field(500, ge=1, le=10**9)
    lake_max_offsets_per_trigger: int = Field(5000, ge=1, le=10**9)
    spark_ui_port: Port = 4040
    cassandra_write_consistency: Annotated[Consistency, Upper] = "LOCAL_QUORUM"
    sink_stall_timeout_s: int = Field(600, ge=30, le=86_400)
    sink_hang_timeout_s: int = Field(120, ge=0, le=86_400)
    sink_concurrency: int = Field(3, ge=1, le=8)
    gold_full_recompute_every: int = Field(1000, ge=0, le=10**9)
    poison_batch_attempts: int = Field(3, ge=1, le=100)
    lake_yield_max_s: float = Field(2.0, ge=0, le=60)
    lake_start_hold_max_s: float = Field(60.0, ge=0, le=3600)
    # jobs.replay_bronze's default target lake (else LAKE_DIR + "_replay").
    replay_lake_dir: str = ""

    @field_validator("kafka_starting_offsets")
    @classmethod
    def _offsets(cls, value: str) -> str:
        if value not in {"latest", "earliest"} and not value.startswith("{"):
            raise ValueError("must be latest, earliest or a JSON offsets map")
        return value


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
    # A write that runs no Spark job this long while every server answers is hung (0: off).
    sink_hang_timeout_s: int = 120
    sink_concurrency: int = 3
    gold_full_recompute_every: int = 1000
    # Failed attempts of one micro-batch before it is processed in parts (jobs/poison_batches.py).
    poison_batch_attempts: int = 3
    # Longest a lake step waits for a short serving batch to end (jobs/pipeline.ServingGate); 0: never.
    lake_yield_max_s: float = 2.0
    # When the job starts, the lake query waits for the serving query to catch up, at most
    # this long (jobs/stream_users.Job.run); 0: both start at once.
    lake_start_hold_max_s: float = 60.0
    # REPLAY_LAKE_DIR: where jobs.replay_bronze rebuilds by default ("" = LAKE_DIR + "_replay").
    replay_lake_dir: str = ""

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
    e = JobEnv.from_env(settings.env)
    root = settings.stack.root
    return JobSettings(
        common=settings,
        lake_dir=_path(root, e.lake_dir),
        checkpoint_dir=_path(root, e.checkpoint_dir),
        starting_offsets=e.kafka_starting_offsets,
        fail_on_data_loss=e.kafka_fail_on_data_loss,
        serving=QuerySettings(SERVING, e.serving_trigger_interval, e.serving_max_offsets_per_trigger),
        lake=QuerySettings(LAKE, e.lake_trigger_interval, e.lake_max_offsets_per_trigger),
        ui_port=e.spark_ui_port,
        cassandra_write_consistency=e.cassandra_write_consistency,
        sink_stall_timeout_s=e.sink_stall_timeout_s,
        sink_hang_timeout_s=e.sink_hang_timeout_s,
        sink_concurrency=e.sink_concurrency,
        gold_full_recompute_every=e.gold_full_recompute_every,
        poison_batch_attempts=e.poison_batch_attempts,
        lake_yield_max_s=e.lake_yield_max_s,
        lake_start_hold_max_s=e.lake_start_hold_max_s,
        replay_lake_dir=e.replay_lake_dir,
    )


def load() -> JobSettings:
    return from_settings(common_settings.load())


def retired(env: Mapping[str, str]) -> list[str]:
    """One line for each retired variable `env` sets (.env or the environment): it is not read."""
    return [
        f"{name}={env[name]!r} is no longer read: the job has two queries, set {instead} instead"
        for name, instead in RETIRED.items()
        if name in env
    ]
