"""Health checks of the whole pipeline as data: what `ops.status` shows and `ops.monitor` alerts on.

Each check is one real request with a short timeout (a status tool must answer, not hang)
and never raises: an unreachable server is a `down` check whose detail is the reason.
Connections come from ops.kafka_admin, ops.cassandra_setup and ops.mongo_setup, so the
status tool logs in exactly like the setup does.

States: ok, warn (worth a look), off (not running: the job or the producer), down (a server
or process that should answer does not), stale (data older than the threshold). `down` and
`stale` make the status fail.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
from collections import ChainMap
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import requests
from cassandra.cluster import Session
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field

from common import clients, job_settings
from common.settings import EnvModel, Settings, monitoring_settings
from ops import cassandra_setup, kafka_admin, lag, mongo_setup

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 5.0
NODETOOL_TIMEOUT_S = 60.0
FAILING = frozenset({"down", "stale"})
# Recent batches the quarantine rate is computed over.
QUARANTINE_WINDOW = 20


@dataclass(frozen=True)
class Check:
    component: str  # kafka, cassandra, mongodb, spark, producer, pipeline
    name: str
    state: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        return self.state in FAILING

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


NonNegative = Annotated[float, Field(ge=0)]


class MonitorEnv(EnvModel):
    """The variables of the alert thresholds and the monitor (docs/OPERATIONS.md)."""

    alert_no_batch_s: NonNegative = 300.0
    alert_max_lag: NonNegative = 10_000.0
    alert_quarantine_pct: NonNegative = 20.0
    alert_max_restarts: NonNegative = 3.0
    monitor_interval_s: float = Field(30.0, gt=0)


@dataclass(frozen=True)
class Thresholds:
    """Alert and status thresholds (env, documented in docs/OPERATIONS.md)."""

    no_batch_s: float = 300.0  # ALERT_NO_BATCH_S: newest batch older than this is stale
    max_lag: float = 10_000.0  # ALERT_MAX_LAG: Kafka records behind the end of the topic
    quarantine_pct: float = 20.0  # ALERT_QUARANTINE_PCT: quarantined users / users, recent batches
    max_restarts: float = 3.0  # ALERT_MAX_RESTARTS: restarts by the supervisor before alerting

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Thresholds:
        e = MonitorEnv.from_env(env)
        return cls(
            no_batch_s=e.alert_no_batch_s,
            max_lag=e.alert_max_lag,
            quarantine_pct=e.alert_quarantine_pct,
            max_restarts=e.alert_max_restarts,
        )


def env_of(s: Settings) -> Mapping[str, str]:
    """`.env` overlaid with the environment. common.envfile only overlays the keys `.env`
    has, and the ALERT_*/SMTP_*/PRODUCER_* knobs are optional (commented in .env.example)."""
    return ChainMap(dict(os.environ), dict(s.env))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, cassandra_setup.NoHostAvailable):
        return cassandra_setup._reason(exc)[:300]
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.removeprefix(f"{name}: ")
    return f"{name}: {text}"[:300] if text else name


# --- Kafka ---------------------------------------------------------------------------------


def kafka_checks(s: Settings) -> list[Check]:
    k = s.kafka
    try:
        with kafka_admin.admin_client(k, kafka_admin.CHECK_TIMEOUT_MS) as admin:
            cluster = admin.describe_cluster()
            brokers = cluster.get("brokers") or []
            versions = sorted(
                {admin.get_broker_version_data(b["broker_id"]).broker_version_str for b in brokers}
            )
            topic = kafka_admin.topic_state(admin, k.topic)
    except Exception as exc:  # any failure is "down", with its reason
        return [Check("kafka", "broker", "down", f"{k.bootstrap_servers}: {_reason(exc)}")]
    checks = [
        Check(
            "kafka",
            "broker",
            "ok",
            f"{len(brokers)} broker(s) at {k.bootstrap_servers}, protocol {'/'.join(versions) or '?'}",
            {"brokers": len(brokers), "versions": versions, "cluster_id": cluster.get("cluster_id")},
        )
    ]
    if topic is None:
        checks.append(Check("kafka", "topic", "down", f"topic {k.topic} is missing (run `make up`)"))
        return checks
    try:
        ends = lag.end_offsets(k, k.topic)
    except Exception as exc:
        checks.append(Check("kafka", "topic", "down", f"{k.topic}: end offsets: {_reason(exc)}"))
        return checks
    checks.append(
        Check(
            "kafka",
            "topic",
            "ok",
            f"{k.topic}: {topic.partitions} partitions, end offsets "
            + " ".join(f"{p}:{o}" for p, o in ends.items())
            + f" ({sum(ends.values())} records written)",
            {"partitions": topic.partitions, "end_offsets": {str(p): o for p, o in ends.items()}},
        )
    )
    return checks


# --- Cassandra -------------------------------------------------------------------------------

_NODETOOL_LINE = re.compile(r"^([UD][NLJM])\s+(\S+)\s+(\S+ \S+|\S+)\s")


def nodetool_status(s: Settings) -> list[tuple[str, str, str]]:
    """(state, address, load) per node from `nodetool status` over JMX (local node only),
    through the same function the stack scripts use."""
    script = (
        f". {s.stack.root}/scripts/lib.sh >/dev/null && . {s.stack.root}/scripts/stack/cassandra.sh "
        "&& _cassandra_nodetool status"
    )
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=NODETOOL_TIMEOUT_S, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"nodetool status failed: {(out.stderr or out.stdout).strip()[-300:]}")
    return [m.groups() for m in map(_NODETOOL_LINE.match, out.stdout.splitlines()) if m]  # type: ignore[misc]


def _gossip_nodes(sess: Session) -> list[tuple[str, str, str]]:
    # External clusters: no JMX from here; gossip as seen by the coordinator (Cassandra 4+).
    rows = sess.execute("SELECT address, status, load FROM system_views.gossip_info")
    return [
        ("UN" if (r.status or "").startswith("NORMAL") else (r.status or "?"), r.address, f"{r.load} B")
        for r in rows
    ]


def cassandra_checks(s: Settings) -> list[Check]:
    c = s.cassandra
    where = f"{','.join(c.hosts)}:{c.port}"
    try:
        with clients.cassandra_session(c, c.admin) as sess:
            version = sess.execute("SELECT release_version FROM system.local").one().release_version
            node_source = "jmx"
            try:
                nodes = nodetool_status(s) if c.local else _gossip_nodes(sess)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                node_source, nodes = f"gossip (JMX: {_reason(exc)})", _gossip_nodes(sess)
            if not c.local:
                node_source = "gossip"
            disk = {
                r.table_name: r.mebibytes
                for r in sess.execute(
                    "SELECT table_name, mebibytes FROM system_views.disk_usage WHERE keyspace_name = %s "
                    "ALLOW FILTERING",
                    (c.keyspace,),
                )
            }
            partitions: dict[str, int] = {}
            for r in sess.execute(
                "SELECT table_name, partitions_count FROM system.size_estimates WHERE keyspace_name = %s",
                (c.keyspace,),
            ):
                partitions[r.table_name] = partitions.get(r.table_name, 0) + (r.partitions_count or 0)
            freshness = pipeline_checks(s, sess)
    except Exception as exc:
        return [Check("cassandra", "node", "down", _reason(exc))]
    down = [n for n in nodes if n[0] != "UN"]
    checks = [
        Check(
            "cassandra",
            "node",
            "down" if down or not nodes else "ok",
            f"Cassandra {version} at {where}; {node_source}: "
            + (", ".join(f"{st} {addr} {load}" for st, addr, load in nodes) or "no node listed"),
            {"version": version, "nodes": [list(n) for n in nodes]},
        ),
        Check(
            "cassandra",
            "tables",
            "ok",
            f"{c.keyspace}: "
            + ", ".join(
                f"{t} {disk.get(t, 0)} MiB ~{partitions.get(t, 0)} partitions"
                for t in sorted(set(disk) | set(partitions))
            )
            + " (estimates, refreshed by Cassandra every few minutes)",
            {"mebibytes": disk, "partitions_estimate": partitions},
        ),
    ]
    return checks + freshness


# --- Pipeline freshness (Cassandra rows written by the job) ---------------------------------


def _days(now: dt.datetime) -> list[dt.date]:
    today = now.date()
    return [today, today - dt.timedelta(days=1)]


def _newest(sess: Session, table: str, columns: str, now: dt.datetime, limit: int = 1) -> list[Any]:
    rows: list[Any] = []
    for day in _days(now):
        # table and columns are constants of this module and a validated keyspace name.
        query = f"SELECT {columns} FROM {table} WHERE day = %s LIMIT %s"  # noqa: S608
        rows += list(sess.execute(query, (day, limit)))
        if len(rows) >= limit:
            break
    return rows[:limit]


def _age(now: dt.datetime, when: dt.datetime) -> float:
    return (now - when.replace(tzinfo=dt.UTC)).total_seconds()


def pipeline_checks(
    s: Settings, sess: Session, now: dt.datetime | None = None, thresholds: Thresholds | None = None
) -> list[Check]:
    """Newest batch (pipeline_metrics, written by jobs.listener), newest quality row and the
    quarantine rate of the recent batches (quality_metrics, written by the pipeline)."""
    now = now or dt.datetime.now(dt.UTC)
    t = thresholds or Thresholds.from_env(env_of(s))
    ks = s.cassandra.keyspace
    checks = []
    cols = "batch_time, batch_id, input_rows, processed_rows_per_second, trigger_ms, quarantined"
    progress = _newest(sess, f"{ks}.pipeline_metrics", cols, now)
    if not progress:
        checks.append(Check("pipeline", "last batch", "stale", "no batch recorded today or yesterday"))
    else:
        p = progress[0]
        age = _age(now, p.batch_time)
        checks.append(
            Check(
                "pipeline",
                "last batch",
                "stale" if age > t.no_batch_s else "ok",
                f"batch {p.batch_id} {age:.0f}s ago: {p.input_rows} records, "
                f"{p.processed_rows_per_second or 0:.1f} rows/s, trigger {p.trigger_ms} ms"
                + (f" (older than ALERT_NO_BATCH_S={t.no_batch_s:.0f})" if age > t.no_batch_s else ""),
                {"batch_id": p.batch_id, "age_s": round(age, 1), "input_rows": p.input_rows},
            )
        )
    quality = _newest(
        sess,
        f"{ks}.quality_metrics",
        "batch_time, batch_id, users_in, valid, quarantined",
        now,
        QUARANTINE_WINDOW,
    )
    if not quality:
        checks.append(Check("pipeline", "quality", "stale", "no quality row today or yesterday"))
    else:
        users = sum(r.users_in or 0 for r in quality)
        bad = sum(r.quarantined or 0 for r in quality)
        pct = 100.0 * bad / users if users else 0.0
        age = _age(now, quality[0].batch_time)
        state = "stale" if age > t.no_batch_s else ("warn" if pct > t.quarantine_pct else "ok")
        checks.append(
            Check(
                "pipeline",
                "quality",
                state,
                f"newest batch {quality[0].batch_id} {age:.0f}s ago; quarantined {bad} of {users} users "
                f"({pct:.1f}%) over the last {len(quality)} batches",
                {"age_s": round(age, 1), "quarantine_pct": round(pct, 2), "users": users, "quarantined": bad},
            )
        )
    return checks


# --- MongoDB -------------------------------------------------------------------------------


def mongo_checks(s: Settings) -> list[Check]:
    where = s.mongo.uri(None) if s.mongo.local else "MONGO_URI"
    if why := clients.refused(clients.mongo_addresses(s)):
        return [Check("mongodb", "server", "down", f"{where}: {why}")]
    try:
        with clients.mongo_client(s, s.mongo.admin) as client:
            client.admin.command("ping")
            server = mongo_setup.server_info(client).describe()
            db = client[s.mongo.database]
            counts = {
                name: db[name].estimated_document_count() for name in sorted(db.list_collection_names())
            }
    except Exception as exc:
        return [Check("mongodb", "server", "down", f"{where}: {_reason(exc)}")]
    return [
        Check("mongodb", "server", "ok", server, {"server": server}),
        Check(
            "mongodb",
            "collections",
            "ok" if counts else "warn",
            f"{s.mongo.database}: " + (", ".join(f"{n} {c}" for n, c in counts.items()) or "no collection"),
            {"counts": counts},
        ),
    ]


# --- Spark (the job's UI) and the producer (its Prometheus endpoint) -------------------------

_STREAM_METRIC = re.compile(
    r"_driver_spark_streaming_(?P<query>\w+?)_(?P<metric>latency|inputRate_total|processingRate_total)_Value"
)


def spark_checks(s: Settings) -> list[Check]:
    job = job_settings.from_settings(s)
    base = f"http://{s.stack.bind_host}:{job.ui_port}"
    try:
        apps = requests.get(f"{base}/api/v1/applications", timeout=HTTP_TIMEOUT_S).json()
    except requests.Timeout:
        detail = f"the Spark UI at {base} did not answer in {HTTP_TIMEOUT_S:.0f}s"
        return [Check("spark", "job", "warn", detail)]
    except (requests.RequestException, ValueError) as exc:
        return [Check("spark", "job", "off", f"not running (no Spark UI at {base}: {type(exc).__name__})")]
    ours = [a for a in apps if a.get("name") == lag.APP_NAME]
    if not ours:
        names = ", ".join(str(a.get("name")) for a in apps)
        return [Check("spark", "job", "warn", f"{base} serves another application ({names})")]
    app = ours[0]
    per_query: dict[str, dict[str, float]] = {q: {} for q in lag.QUERIES}
    try:
        text = requests.get(f"{base}/metrics/prometheus", timeout=HTTP_TIMEOUT_S).text
        for line in text.splitlines():
            m = _STREAM_METRIC.search(line)
            if m and m.group("query") in per_query:
                per_query[m.group("query")][m.group("metric")] = float(line.rsplit(" ", 1)[1])
    except (requests.RequestException, ValueError) as exc:
        log.info("Spark metrics unavailable: %s", exc)
    parts = []
    for query, metrics in per_query.items():
        parts.append(
            f"{query} active, in {metrics.get('inputRate_total', 0):.1f} rows/s, processed "
            f"{metrics.get('processingRate_total', 0):.1f} rows/s, "
            f"last batch {metrics.get('latency', 0):.0f} ms"
            if metrics
            else f"{query} not started yet (no streaming metrics)"
        )
    active = all(per_query.values())
    detail = f"app {app.get('id')} at {base}: " + "; ".join(parts)
    flat = {f"{q}_{k}": v for q, metrics in per_query.items() for k, v in metrics.items()}
    return [Check("spark", "job", "ok" if active else "warn", detail, {"app_id": app.get("id"), **flat})]


def producer_port(s: Settings) -> int:
    return monitoring_settings(env_of(s)).producer_port


def producer_metrics(s: Settings) -> dict[str, float] | None:
    """The producer's counters and gauges (samples summed over labels); None when it does not run."""
    port = producer_port(s)
    if port == 0:
        return None
    try:
        text = requests.get(f"http://{s.stack.bind_host}:{port}/metrics", timeout=HTTP_TIMEOUT_S).text
    except requests.RequestException:
        return None
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("producer_"):
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def producer_checks(s: Settings) -> list[Check]:
    values = producer_metrics(s)
    where = f"http://{s.stack.bind_host}:{producer_port(s)}/metrics"
    if values is None:
        return [Check("producer", "process", "off", f"not running (no metrics at {where})")]
    kafka_up = values.get("producer_kafka_up", 0.0) >= 1
    detail = (
        f"{'publishing' if kafka_up else 'KAFKA UNREACHABLE'}: "
        f"{values.get('producer_batches_published_total', 0):.0f} batches confirmed, "
        f"{values.get('producer_publish_failures_total', 0):.0f} publish failures, "
        f"{values.get('producer_fetch_failures_total', 0):.0f} fetch failures, "
        f"{values.get('producer_spool_batches', 0):.0f} spooled"
    )
    return [Check("producer", "process", "ok" if kafka_up else "down", detail, values)]


def lag_checks(s: Settings, thresholds: Thresholds | None = None) -> list[Check]:
    """One check per query of the job: records between its checkpoint and the topic's end."""
    t = thresholds or Thresholds.from_env(env_of(s))
    checks = []
    for query in lag.QUERIES:
        name = f"kafka lag ({query})"
        try:
            report = lag.lag(s.kafka, lag.default_checkpoint(s, query))
        except lag.CheckpointError as exc:
            checks.append(Check("pipeline", name, "warn", str(exc)))
            continue
        except Exception as exc:
            checks.append(Check("pipeline", name, "down", f"cannot compute: {_reason(exc)}"))
            continue
        parts = " ".join(f"{p.partition}:{p.lag}" for p in report.partitions)
        head = "no committed batch" if report.batch_id is None else f"batch {report.batch_id} committed"
        checks.append(
            Check(
                "pipeline",
                name,
                "stale" if report.total > t.max_lag else "ok",
                f"{report.total} records behind ({parts}); {head}"
                + (f" (above ALERT_MAX_LAG={t.max_lag:.0f})" if report.total > t.max_lag else ""),
                report.as_dict(),
            )
        )
    return checks


GROUPS: dict[str, Callable[[Settings], list[Check]]] = {
    "kafka": kafka_checks,
    "cassandra": cassandra_checks,
    "mongodb": mongo_checks,
    "spark": spark_checks,
    "producer": producer_checks,
    "lag": lag_checks,
}


def collect(s: Settings, groups: list[str] | None = None) -> list[Check]:
    """Every check, run in parallel (each has its own timeout), in a stable order."""
    names = groups or list(GROUPS)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = [pool.submit(GROUPS[name], s) for name in names]
        results: list[Check] = []
        for name, future in zip(names, futures, strict=True):
            try:
                results += future.result()
            except Exception as exc:  # a bug in a check must not hide the others
                log.exception("check %s failed", name)
                results.append(Check(name, "check", "down", f"check crashed: {_reason(exc)}"))
    order = {"kafka": 0, "cassandra": 1, "mongodb": 2, "spark": 3, "producer": 4, "pipeline": 5}
    return sorted(results, key=lambda c: order.get(c.component, 9))


def to_json(checks: list[Check]) -> str:
    return json.dumps(
        {"ok": not any(c.failing for c in checks), "checks": [c.as_dict() for c in checks]},
        indent=2,
        default=str,
    )
