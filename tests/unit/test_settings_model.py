"""The settings models: .env.example documents every field, secrets never show, one line per bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common import envfile, job_settings
from common import settings as cs
from common.job_settings import JobEnv
from dashboard.settings import DashboardEnv
from dashboard.settings import from_mapping as dashboard_from_mapping
from ingest.settings import ProducerEnv
from jobs import export
from ops.alerts import AlertSettings, channels_from_env
from ops.health import MonitorEnv
from tests.unit.settings_env import minimal_env

ROOT = Path(__file__).resolve().parents[2]
MODELS: tuple[type[cs.EnvModel], ...] = (
    cs.CommonEnv,
    cs.Names,
    cs.ExternalServers,
    cs.MonitoringSettings,
    cs.GovernanceSettings,
    JobEnv,
    DashboardEnv,
    ProducerEnv,
    AlertSettings,
    MonitorEnv,
)
# Read by the shell scripts only (scripts/spark-submit.sh), never by Python.
SHELL_ONLY = {"SPARK_CDS"}
# `KEY=value` lines, and `# KEY=value` lines of the optional settings.
DOCUMENTED = re.compile(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def _documented() -> set[str]:
    return set(DOCUMENTED.findall((ROOT / ".env.example").read_text()))


def test_env_example_documents_every_field_and_nothing_else() -> None:
    fields = {var for model in MODELS for var in model.variables()}
    documented = _documented()
    assert sorted(fields - documented) == [], "fields without a line in .env.example"
    assert sorted(documented - fields - SHELL_ONLY) == [], ".env.example lines no model reads"


def test_every_settings_model_is_checked() -> None:
    """A new EnvModel must join MODELS above (and so be held to .env.example)."""
    seen: set[type[cs.EnvModel]] = set()
    todo = list(cs.EnvModel.__subclasses__())
    while todo:
        model = todo.pop()
        seen.add(model)
        todo.extend(model.__subclasses__())
    assert {m for m in seen if not m.__module__.startswith("tests.")} <= set(MODELS)


def _full_env() -> dict[str, str]:
    return minimal_env(
        DASHBOARD_OPERATOR_PASSWORD="operator-secret-1",
        DASHBOARD_VIEWER_PASSWORD="viewer-secret-22",
        ALERT_SMTP_HOST="smtp.example",
        ALERT_SMTP_TO="ops@example",
        ALERT_SMTP_PASSWORD="smtp-secret-3",
        CASSANDRA_ERASER_USER="eraser",
        CASSANDRA_ERASER_PASSWORD="eraser-secret-4",
    )


def test_no_repr_shows_a_secret() -> None:
    env = _full_env()
    secrets = [v for k, v in env.items() if k.endswith(("_PASSWORD", "_KEY"))]
    assert len(secrets) >= 14
    s = cs.from_mapping(env, ROOT)
    shown = [
        repr(s),
        repr(s.kafka),
        repr(s.cassandra),
        repr(s.mongo),
        repr(s.pseudonym),
        repr(cs.CommonEnv.from_env(env)),
        str(cs.CommonEnv.from_env(env)),
        repr(cs.GovernanceSettings.from_env(env)),
        repr(cs.GovernanceSettings.from_env(env).eraser),
        repr(DashboardEnv.from_env(env)),
        repr(dashboard_from_mapping(env, ROOT)),
        repr(dashboard_from_mapping(env, ROOT).users),
        repr(AlertSettings.from_env(env)),
        repr(channels_from_env(env)),
    ]
    for text in shown:
        for secret in secrets:
            assert secret not in text, (secret, text)
    # ... while the clients still get them where they log in.
    assert s.kafka.client_config(s.kafka.job)["sasl_plain_password"] == "secret-KAFKA_JOB"
    assert 'password="secret-KAFKA_JOB"' in s.kafka.jaas(s.kafka.job)


def test_an_error_never_shows_a_secret() -> None:
    with pytest.raises(cs.SettingsError) as err:
        cs.from_mapping(minimal_env(PSEUDONYM_KEY="not-hex-secret"), ROOT)
    assert str(err.value) == "PSEUDONYM_KEY must be hex"
    with pytest.raises(cs.SettingsError) as err:
        cs.from_mapping(minimal_env(PSEUDONYM_KEY="abcd"), ROOT)
    assert str(err.value) == "PSEUDONYM_KEY must be at least 16 bytes (32 hex digits)"


def test_one_line_per_invalid_value() -> None:
    env = minimal_env(KAFKA_TOPIC_PARTITIONS="many", CASSANDRA_PORT="70000", MONGO_TLS="sometimes")
    with pytest.raises(cs.SettingsError) as err:
        cs.from_mapping(env, ROOT)
    assert str(err.value).splitlines() == [
        "KAFKA_TOPIC_PARTITIONS='many' is not an integer",
        "CASSANDRA_PORT=70000 is outside 1..65535",
        "MONGO_TLS='sometimes' must be true or false",
    ]


def test_missing_and_generated_values_are_not_set() -> None:
    env = minimal_env(KAFKA_JOB_PASSWORD=envfile.GENERATED)
    del env["CASSANDRA_WRITER_USER"]
    with pytest.raises(cs.SettingsError) as err:
        cs.from_mapping(env, ROOT)
    assert sorted(str(err.value).splitlines()) == [
        "CASSANDRA_WRITER_USER is not set (run `make env` or set it in .env)",
        "KAFKA_JOB_PASSWORD is not set (run `make env` or set it in .env)",
    ]


@pytest.mark.parametrize(
    ("model", "env", "message"),
    [
        (JobEnv, {"SERVING_TRIGGER_INTERVAL": "soon"}, "SERVING_TRIGGER_INTERVAL='soon' is not like"),
        (JobEnv, {"KAFKA_STARTING_OFFSETS": "first"}, "KAFKA_STARTING_OFFSETS='first' must be latest,"),
        (
            JobEnv,
            {"CASSANDRA_WRITE_CONSISTENCY": "most"},
            "CASSANDRA_WRITE_CONSISTENCY='most' must be one of",
        ),
        (JobEnv, {"SINK_CONCURRENCY": "9"}, "SINK_CONCURRENCY=9 is outside 1..8"),
        (JobEnv, {"LAKE_YIELD_MAX_S": "-1"}, "LAKE_YIELD_MAX_S=-1"),
        (cs.GovernanceSettings, {"MONGO_RETENTION_DAYS": "0"}, "MONGO_RETENTION_DAYS=0 must be at least 1"),
        (
            cs.GovernanceSettings,
            {"DELTA_LOG_RETENTION": "30 days"},
            "DELTA_LOG_RETENTION='30 days' is not like",
        ),
        (MonitorEnv, {"ALERT_MAX_LAG": "-1"}, "ALERT_MAX_LAG=-1 must be at least 0"),
        (MonitorEnv, {"MONITOR_INTERVAL_S": "0"}, "MONITOR_INTERVAL_S=0 must be above 0"),
        (AlertSettings, {"ALERT_SMTP_PORT": "smtp"}, "ALERT_SMTP_PORT='smtp' is not an integer"),
        (AlertSettings, {"ALERT_SMTP_HOST": "h"}, "ALERT_SMTP_HOST is set but ALERT_SMTP_TO"),
    ],
)
def test_component_refusals_are_one_line(model: type[cs.EnvModel], env: dict[str, str], message: str) -> None:
    with pytest.raises(cs.SettingsError) as err:
        model.from_env(env)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_defaults_and_case_of_values() -> None:
    job = JobEnv.from_env({"CASSANDRA_WRITE_CONSISTENCY": "local_one", "KAFKA_FAIL_ON_DATA_LOSS": "off"})
    assert (job.cassandra_write_consistency, job.kafka_fail_on_data_loss) == ("LOCAL_ONE", False)
    governance = cs.GovernanceSettings.from_env({"DELTA_LOG_RETENTION": " interval 2 weeks "})
    assert governance.delta_log_retention == "interval 2 weeks"
    assert governance.eraser is None  # older .env files lack the eraser
    assert cs.GovernanceSettings.from_env({"CASSANDRA_ERASER_PASSWORD": "<generated>"}).eraser is None


def test_export_and_dashboard_read_min_count_alike() -> None:
    for raw, value in (("", 5), ("7", 7)):
        env = _full_env() | {"DASHBOARD_MIN_COUNT": raw}
        assert export.min_count(env) == dashboard_from_mapping(env, ROOT).min_count == value
    for bad in ("0", "few"):
        env = _full_env() | {"DASHBOARD_MIN_COUNT": bad}
        with pytest.raises(cs.SettingsError) as from_export:
            export.min_count(env)
        with pytest.raises(cs.SettingsError) as from_dashboard:
            dashboard_from_mapping(env, ROOT)
        assert str(from_export.value) == str(from_dashboard.value)


def test_the_environment_wins_over_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = "\n".join(f"{k}={v}" for k, v in minimal_env().items() if k != "KAFKA_TOPIC_PARTITIONS")
    (tmp_path / ".env.example").write_text(example + "\nKAFKA_TOPIC_PARTITIONS=3\nKAFKA_TOPIC=from_file\n")
    monkeypatch.delenv("KAFKA_TOPIC_PARTITIONS", raising=False)
    monkeypatch.setenv("KAFKA_TOPIC", "from_environment")
    s = cs.load(tmp_path)
    assert (tmp_path / ".env").exists()
    assert (s.kafka.topic, s.kafka.partitions) == ("from_environment", 3)
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "0")
    with pytest.raises(cs.SettingsError, match=r"^KAFKA_TOPIC_PARTITIONS=0 is outside 1\.\.1000$"):
        cs.load(tmp_path)


def test_retired_variables_are_named_and_never_read() -> None:
    """An old .env keeps TRIGGER_INTERVAL and KAFKA_MAX_OFFSETS_PER_TRIGGER: the job says each is ignored."""
    env = {
        "TRIGGER_INTERVAL": "1 second",
        "KAFKA_MAX_OFFSETS_PER_TRIGGER": "10",
        "LAKE_TRIGGER_INTERVAL": "2 seconds",
    }
    assert job_settings.retired(env) == [
        "TRIGGER_INTERVAL='1 second' is no longer read: the job has two queries, set SERVING_TRIGGER_INTERVAL"
        " and LAKE_TRIGGER_INTERVAL instead",
        "KAFKA_MAX_OFFSETS_PER_TRIGGER='10' is no longer read: the job has two queries, set"
        " SERVING_MAX_OFFSETS_PER_TRIGGER and LAKE_MAX_OFFSETS_PER_TRIGGER instead",
    ]
    job = JobEnv.from_env(env)
    assert (job.serving_trigger_interval, job.lake_trigger_interval) == ("500 milliseconds", "2 seconds")
    assert (job.serving_max_offsets_per_trigger, job.lake_max_offsets_per_trigger) == (500, 5000)
    assert job_settings.retired({"LAKE_TRIGGER_INTERVAL": "2 seconds"}) == []
    # A retired name is no current variable, and each replacement it names is one.
    current = {var for model in MODELS for var in model.variables()}
    assert not set(job_settings.RETIRED) & current
    assert {v for instead in job_settings.RETIRED.values() for v in instead.split(" and ")} <= current
