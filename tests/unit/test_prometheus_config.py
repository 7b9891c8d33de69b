"""Prometheus's generated configuration and rules (ops/prometheus.py): one source with the monitor.

Prometheus itself loading them is tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import re

import pytest

from common import envfile
from common.settings import SettingsError, monitoring_settings
from ops import health, monitor, supervise
from ops import prometheus as prom

ENV_EXAMPLE = envfile.PROJECT_ROOT / ".env.example"
NEW_SETTINGS = (
    "PROMETHEUS_ENABLED",
    "PROMETHEUS_PORT",
    "PROMETHEUS_SCRAPE_INTERVAL_S",
    "PROMETHEUS_RETENTION_TIME",
    "PROMETHEUS_RETENTION_SIZE",
    "PROMETHEUS_MEMORY_LIMIT",
    "KAFKA_JMX_EXPORTER_PORT",
    "CASSANDRA_JMX_EXPORTER_PORT",
    "FERRETDB_DEBUG_PORT",
)


def _alerts(env: dict[str, str]) -> dict[str, dict[str, object]]:
    m = monitoring_settings(env)
    group = prom.rules(health.Thresholds.from_env(env), m, env)["groups"][0]
    return {r["alert"]: r for r in group["rules"]}


def test_docs_copy_is_the_render_of_the_defaults() -> None:
    # docs/monitoring/ is what `make monitoring` writes with the default settings: regenerate it
    # with `python -m ops.prometheus docs` when this fails.
    for name, text in prom.render({}).items():
        assert (prom.DOCS_DIR / name).read_text(encoding="utf-8") == text, name


def test_every_monitor_rule_is_a_prometheus_rule_or_named_monitor_only() -> None:
    checks = [
        health.Check("kafka", "broker", "down", "refused"),
        health.Check("cassandra", "node", "down", "refused"),
        health.Check("mongodb", "server", "down", "refused"),
        health.Check("pipeline", "last batch", "stale", "old"),
        health.Check("pipeline", "kafka lag", "stale", "behind"),
        health.Check("pipeline", "quality", "warn", "high", {"quarantine_pct": 99.0}),
        health.Check("producer", "process", "down", "kafka refuses"),
    ]
    supervised = [{"name": "job", "alerting": True, "status": supervise.RUNNING, "restarts": 3}]
    fired = {f.rule.split(":")[0] for f in monitor.evaluate(checks, supervised, health.Thresholds())}
    assert fired == {"down", "no_batch", "lag", "quarantine", "producer", "restarts"}
    assert fired <= set(prom.MONITOR_RULES) | set(prom.MONITOR_ONLY)
    assert not set(prom.MONITOR_RULES) & set(prom.MONITOR_ONLY)
    alerts = _alerts({})
    for rule, names in prom.MONITOR_RULES.items():
        for name in names:
            assert str(alerts[name]["labels"]["monitor_rule"]).split(":")[0] == rule  # type: ignore[index]


def test_thresholds_come_from_the_monitors_settings() -> None:
    assert _alerts({})["NoBatch"]["for"] == f"{round(health.Thresholds().no_batch_s)}s"
    assert _alerts({"ALERT_NO_BATCH_S": "120"})["NoBatch"]["for"] == "120s"
    # Down: two scrapes without an answer.
    assert _alerts({"PROMETHEUS_SCRAPE_INTERVAL_S": "5"})["KafkaDown"]["for"] == "10s"


def test_scrape_targets_follow_the_settings() -> None:
    def jobs(env: dict[str, str]) -> dict[str, list[str]]:
        cfg = prom.scrape_config(monitoring_settings(env), env)
        return {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}

    default = jobs({})
    assert default == {
        "producer": ["127.0.0.1:9108"],
        "spark": ["127.0.0.1:4040"],
        "spark_executors": ["127.0.0.1:4040"],
        "kafka": ["127.0.0.1:9404"],
        "cassandra": ["127.0.0.1:9405"],
        "ferretdb": ["127.0.0.1:8088"],
        "prometheus": ["127.0.0.1:9090"],
    }
    # Everything on loopback, whatever STACK_BIND_HOST says.
    assert jobs({"STACK_BIND_HOST": "10.0.0.5", "SPARK_UI_PORT": "4190"})["spark"] == ["127.0.0.1:4190"]
    # Off, or external (no local agent to scrape).
    off = jobs({"PRODUCER_METRICS_PORT": "0", "KAFKA_JMX_EXPORTER_PORT": "0", "CASSANDRA_HOSTS": "cas1"})
    assert not {"producer", "kafka", "cassandra"} & set(off)
    assert "MongoDBDown" not in _alerts({"MONGO_URI": "mongodb://m1/"})


@pytest.mark.parametrize(
    ("name", "query", "gauge"),
    [
        (
            "metrics_stream_users_driver_spark_streaming_serving_inputRate_total_Value",
            "serving",
            "inputRate_total",
        ),
        ("metrics_stream_users_driver_spark_streaming_lake_latency_Value", "lake", "latency"),
        (
            "metrics_app_1_driver_spark_streaming_my_query_states_usedBytes_Value",
            "my_query",
            "states_usedBytes",
        ),
    ],
)
def test_spark_streaming_gauges_are_renamed_with_a_query_label(name: str, query: str, gauge: str) -> None:
    # Prometheus anchors relabel regular expressions at both ends (RE2; this one is also Python's).
    match = re.fullmatch(prom.SPARK_STREAMING_NAME, name)
    assert match and match.groups() == (query, gauge)


def test_other_spark_metrics_keep_their_names() -> None:
    assert not re.fullmatch(prom.SPARK_STREAMING_NAME, "metrics_stream_users_driver_jvm_heap_used_Value")


def test_yaml_writer() -> None:
    text = prom.to_yaml({"a": [{"b": 'up{job="x"} == 0', "c": ["1", 2]}, "it's"], "d": True})
    assert text.endswith("a:\n  - b: 'up{job=\"x\"} == 0'\n    c: ['1', 2]\n  - \"it's\"\nd: true\n")


def test_env_example_documents_every_monitoring_setting() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for key in NEW_SETTINGS:
        assert re.search(rf"^(# )?{key}=", text, re.M), key
    example = envfile.parse(text)
    m = monitoring_settings(example)
    assert (m.enabled, m.port, m.kafka_exporter_port, m.cassandra_exporter_port) == (False, 9090, 9404, 9405)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PROMETHEUS_RETENTION_TIME", "2 days"),
        ("PROMETHEUS_RETENTION_SIZE", "1G"),
        ("PROMETHEUS_MEMORY_LIMIT", "256M"),
        ("PROMETHEUS_PORT", "0"),
        ("PROMETHEUS_ENABLED", "maybe"),
    ],
)
def test_bad_monitoring_settings_name_their_variable(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        monitoring_settings({key: value})
