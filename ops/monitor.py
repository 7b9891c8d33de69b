"""A small monitor: evaluates the alert rules on the health checks and notifies on changes.

    python -m ops.monitor            # every MONITOR_INTERVAL_S (default 30) until stopped
    python -m ops.monitor --once     # one evaluation (cron, tests); exit 1 while a rule fires

Rules (thresholds in the environment, docs/OPERATIONS.md):
- down:<component>:<check>  a server (Kafka, Cassandra, MongoDB) does not answer      critical
- no_batch                  the newest batch is older than ALERT_NO_BATCH_S            critical
- lag                       Kafka records behind above ALERT_MAX_LAG                   warning
- quarantine                quarantined users above ALERT_QUARANTINE_PCT % (recent)    warning
- producer                  the producer runs but Kafka refuses its batches            critical
- restarts:<name>           a supervised process crashed ALERT_MAX_RESTARTS times in a
                            row and is still being restarted (fired and resolved by
                            its supervisor, ops.supervise; mirrored here)              critical

A rule notifies when it starts firing and when it resolves, not on every evaluation: the
rules firing now are kept in the alert file (ops.alerts), which the dashboard shows.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import stopping
from common.settings import Settings, SettingsError, load
from ops import alerts, health, supervise

log = logging.getLogger(__name__)

SERVERS = ("kafka", "cassandra", "mongodb")


@dataclass(frozen=True)
class Firing:
    rule: str
    severity: str
    summary: str
    details: dict[str, Any]


def supervisor_states(folder: Path) -> list[dict[str, Any]]:
    """The state files ops.supervise writes, one per supervised process."""
    return supervise.states(folder)


def evaluate(
    checks: list[health.Check], supervised: list[dict[str, Any]], t: health.Thresholds
) -> list[Firing]:
    """The rules that fire for these checks (pure: the tests feed it checks)."""
    firing: list[Firing] = []
    for c in checks:
        if c.component in SERVERS and c.state == "down":
            firing.append(
                Firing(
                    f"down:{c.component}:{c.name}", "critical", f"{c.component} {c.name} down: {c.detail}", {}
                )
            )
        elif c.component == "pipeline" and c.name == "last batch" and c.state == "stale":
            firing.append(Firing("no_batch", "critical", f"no recent batch: {c.detail}", c.data))
        elif c.component == "pipeline" and c.name.startswith("kafka lag") and c.state == "stale":
            firing.append(Firing("lag", "warning", f"job behind Kafka: {c.detail}", c.data))
        elif c.component == "pipeline" and c.name == "quality":
            pct = float(c.data.get("quarantine_pct", 0.0))
            if pct > t.quarantine_pct:
                firing.append(
                    Firing(
                        "quarantine",
                        "warning",
                        f"quarantine rate {pct:.1f}% above {t.quarantine_pct:.1f}%: {c.detail}",
                        c.data,
                    )
                )
        elif c.component == "producer" and c.state == "down":
            firing.append(Firing("producer", "critical", f"producer failing: {c.detail}", {}))
    for state in supervised:
        # The supervisor fires and resolves this rule itself (once per streak of crashes);
        # mirrored here so that the monitor does not resolve it while the streak lasts.
        if state.get("alerting") and state.get("status") not in (supervise.STOPPED, supervise.FINISHED):
            name = state.get("name", "?")
            firing.append(
                Firing(
                    f"restarts:{name}",
                    "critical",
                    f"{name} is down: crashed {state.get('restarts')} times in a row, still restarting "
                    f"(last exit {state.get('last_exit')})",
                    state,
                )
            )
    return firing


class Monitor:
    def __init__(self, settings: Settings) -> None:
        env = health.env_of(settings)
        self.settings = settings
        self.thresholds = health.Thresholds.from_env(env)
        self.channels = alerts.channels_from_env(env)
        self.store = alerts.AlertStore(alerts.alert_file(env, settings.stack.stack_dir))
        self.supervise_dir = settings.stack.stack_dir / "supervise"

    def run_once(self) -> list[alerts.Alert]:
        """Evaluate, notify the changes; returns the alerts sent (firing and resolved)."""
        checks = health.collect(self.settings)
        firing = {f.rule: f for f in evaluate(checks, supervisor_states(self.supervise_dir), self.thresholds)}
        active = self.store.active()
        sent = []
        for rule, f in firing.items():
            if rule not in active:
                sent.append(alerts.Alert(rule, f.severity, "firing", f.summary, details=f.details))
        for rule, previous in active.items():
            if rule not in firing:
                sent.append(
                    alerts.Alert(rule, previous.get("severity", "warning"), "resolved", "back to normal")
                )
        for alert in sent:
            alerts.dispatch(alert, self.channels, self.store)
        if not sent:
            log.info("%d rule(s) firing, no change", len(firing))
        return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="evaluate once and exit")
    parser.add_argument("--interval", type=float, help="seconds between evaluations (MONITOR_INTERVAL_S)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "cassandra", "pymongo", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        settings = load()
        monitor = Monitor(settings)
        interval = args.interval or health.MonitorEnv.from_env(health.env_of(settings)).monitor_interval_s
    except (SettingsError, ValueError) as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    if args.once:
        monitor.run_once()
        return 1 if monitor.store.active() else 0
    stop = stopping.Stop()
    stopping.install(stop, log)
    log.info("monitoring every %.0fs; alerts -> %s", interval, ", ".join(c.name for c in monitor.channels))
    while not stop.is_set():
        try:
            monitor.run_once()
        except Exception:  # keep monitoring: the next round may work
            log.exception("evaluation failed")
        stop.wait(interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
