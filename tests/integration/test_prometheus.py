"""Prometheus, really running (scripts/stack/prometheus.sh, started by the session's `stack`).

Read through its HTTP API: the servers' JMX exporter agents and FerretDB are scraped, known
series of Kafka and Cassandra hold the test namespace's topic and keyspace, and the rule group
generated from the monitor's thresholds is loaded and evaluates without error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import requests

from common import envfile
from common.settings import MonitoringSettings, Settings, monitoring_settings
from ops import prometheus as prom
from ops.health import Thresholds, env_of

TIMEOUT_S = 90.0  # a few scrape intervals (10 s in the test run)


@pytest.fixture(scope="module")
def api(stack: Settings) -> Callable[[str, dict[str, str] | None], Any]:
    m = monitoring_settings(env_of(stack))
    base = f"http://127.0.0.1:{m.port}/api/v1/"

    def get(path: str, params: dict[str, str] | None = None) -> Any:
        response = requests.get(base + path, params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    return get


@pytest.fixture(scope="module")
def monitoring(stack: Settings) -> MonitoringSettings:
    return monitoring_settings(env_of(stack))


def wait_for(query: Callable[[], Any], ok: Callable[[Any], bool], what: str) -> Any:
    deadline, last = time.monotonic() + TIMEOUT_S, None
    while time.monotonic() < deadline:
        last = query()
        if ok(last):
            return last
        time.sleep(1)
    raise AssertionError(f"{what}: not within {TIMEOUT_S:.0f}s; last answer {last!r}")


def instant(api: Callable[..., Any], promql: str) -> list[dict[str, Any]]:
    return list(api("query", {"query": promql})["result"])


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def test_it_is_the_pinned_build(api: Callable[..., Any]) -> None:
    pinned = envfile.parse((envfile.PROJECT_ROOT / "conf" / "versions.env").read_text())["PROMETHEUS_VERSION"]
    minor = int(pinned.split(".")[1])  # the Go module v0.316.0 is Prometheus 3.16.0
    assert api("status/buildinfo")["version"] == f"{minor // 100}.{minor % 100}.{pinned.split('.')[2]}"


def test_the_generated_targets_are_scraped(
    api: Callable[..., Any], monitoring: MonitoringSettings, stack: Settings
) -> None:
    wanted = {j["job_name"] for j in prom.scrape_config(monitoring, env_of(stack))["scrape_configs"]}
    # Just started, Prometheus hands the targets to its scrapers a few seconds later.
    wait_for(
        lambda: {t["labels"]["job"] for t in api("targets", {"state": "active"})["activeTargets"]},
        lambda jobs: jobs == wanted,
        f"active targets {sorted(wanted)}",
    )
    for job in ("kafka", "cassandra", "ferretdb", "prometheus"):
        query = f'up{{job="{job}"}}'
        result = wait_for(partial(instant, api, query), lambda r: values(r) == [1.0], query)
        assert result[0]["metric"]["instance"].startswith("127.0.0.1:")


def test_kafka_jmx_series_of_the_test_topic(api: Callable[..., Any], stack: Settings) -> None:
    topic = stack.kafka.topic
    partitions = int(env_of(stack).get("KAFKA_TOPIC_PARTITIONS") or 3)
    result = wait_for(
        lambda: instant(api, f'kafka_log_end_offset{{job="kafka", topic="{topic}"}}'),
        lambda r: len(r) == partitions,
        f"kafka_log_end_offset of {topic}",
    )
    assert sorted(r["metric"]["partition"] for r in result) == [str(p) for p in range(partitions)]
    assert all(v >= 0 for v in values(result))
    assert values(instant(api, 'kafka_server_broker_state{job="kafka"}')) == [3.0]  # RUNNING


def test_cassandra_jmx_series_of_the_test_keyspace(api: Callable[..., Any], stack: Settings) -> None:
    keyspace = stack.cassandra.keyspace
    wait_for(
        lambda: instant(api, f'cassandra_keyspace_live_disk_space_used_bytes{{keyspace="{keyspace}"}}'),
        lambda r: len(r) == 1,
        f"live disk space of {keyspace}",
    )
    assert values(instant(api, 'cassandra_storage_load_bytes{job="cassandra"}'))[0] > 0
    # The JVM's own metrics come with the agent.
    assert values(instant(api, 'jvm_memory_used_bytes{job="cassandra", area="heap"}'))[0] > 0


def test_ferretdb_metrics(api: Callable[..., Any]) -> None:
    wait_for(
        lambda: instant(api, 'ferretdb_client_accepts_total{job="ferretdb"}'),
        lambda r: len(r) > 0,
        "ferretdb_client_accepts_total",
    )


def test_the_rule_group_is_loaded_and_evaluates(api: Callable[..., Any], stack: Settings) -> None:
    env = env_of(stack)
    groups = api("rules")["groups"]
    assert [g["name"] for g in groups] == ["random-user-analytics"]
    rules = wait_for(
        lambda: {r["name"]: r for r in api("rules")["groups"][0]["rules"]},
        lambda r: all(rule.get("health") == "ok" for rule in r.values()),
        "every rule evaluated without error",
    )
    for names in prom.MONITOR_RULES.values():
        assert set(names) <= set(rules)
    # The threshold of the monitor's no_batch rule (ALERT_NO_BATCH_S), in seconds.
    assert rules["NoBatch"]["duration"] == round(Thresholds.from_env(env).no_batch_s)
    # The servers answer: their rules do not fire (once a scrape has seen a server that an
    # earlier test restarted: until then its rule may be pending).
    servers = ("KafkaDown", "CassandraDown", "MongoDBDown")
    wait_for(
        lambda: {r["name"]: r["state"] for r in api("rules")["groups"][0]["rules"] if r["name"] in servers},
        lambda states: states == dict.fromkeys(servers, "inactive"),
        "the server rules inactive",
    )
