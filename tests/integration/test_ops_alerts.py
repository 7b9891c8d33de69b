"""Alerts through real channels (an HTTP server and an SMTP server started here), the monitor's
rules on servers that do not answer, and how it mirrors the supervisor's alert (the supervisor
itself: tests/unit/test_supervise.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from common.settings import load
from ops import alerts, health, monitor
from tests.integration.test_ops_status import NOWHERE


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's start() cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_one_alert_reaches_log_webhook_email_and_the_file(
    smtp: tuple[Inbox, int], webhook: tuple[list[dict[str, Any]], str], tmp_path: Path
) -> None:
    inbox, port = smtp
    posted, url = webhook
    env = {
        "ALERT_WEBHOOK_URL": url,
        "ALERT_SMTP_HOST": "127.0.0.1",
        "ALERT_SMTP_PORT": str(port),
        "ALERT_SMTP_FROM": "monitor@example.org",
        "ALERT_SMTP_TO": "ops@example.org, oncall@example.org",
    }
    channels = alerts.channels_from_env(env)
    assert [c.name for c in channels] == ["log", "webhook", "email"]
    store = alerts.AlertStore(tmp_path / "alerts.json")
    alert = alerts.Alert(
        "lag", "warning", "firing", "job behind Kafka: 12000 records", "2026-03-01T00:00:00+00:00"
    )

    assert alerts.dispatch(alert, channels, store) == []

    assert posted == [
        {
            "rule": "lag",
            "severity": "warning",
            "state": "firing",
            "summary": "job behind Kafka: 12000 records",
            "at": "2026-03-01T00:00:00+00:00",
            "details": {},
        }
    ]
    ((rcpt, mail),) = inbox.messages
    assert rcpt == ["ops@example.org", "oncall@example.org"]
    assert mail["Subject"] == "[FIRING warning] lag: job behind Kafka: 12000 records"
    assert "job behind Kafka: 12000 records" in mail.get_payload()
    assert store.active() == {"lag": posted[0]}

    resolved = alerts.Alert("lag", "warning", "resolved", "back to normal", "2026-03-01T00:05:00+00:00")
    alerts.dispatch(resolved, channels, store)
    assert store.active() == {}
    assert [h["state"] for h in store.read()["history"]] == ["firing", "resolved"]
    assert len(inbox.messages) == 2


def test_a_broken_channel_does_not_silence_the_others(tmp_path: Path) -> None:
    channels = alerts.channels_from_env({"ALERT_WEBHOOK_URL": "http://127.0.0.1:1/nothing"})
    store = alerts.AlertStore(tmp_path / "alerts.json")
    failures = alerts.dispatch(alerts.Alert("no_batch", "critical", "firing", "x"), channels, store)
    assert len(failures) == 1 and failures[0].startswith("webhook: ConnectionError")
    assert list(store.active()) == ["no_batch"]


def test_rules_on_checks() -> None:
    t = health.Thresholds(no_batch_s=60, max_lag=100, quarantine_pct=10, max_restarts=3)
    checks = [
        health.Check("kafka", "broker", "ok", "1 broker"),
        health.Check("cassandra", "node", "down", "refused"),
        health.Check("pipeline", "last batch", "stale", "batch 7 900s ago"),
        health.Check("pipeline", "quality", "warn", "13%", {"quarantine_pct": 13.3}),
        health.Check("pipeline", "kafka lag", "stale", "500 behind", {"total": 500}),
        health.Check("producer", "process", "down", "KAFKA UNREACHABLE"),
        health.Check("spark", "job", "off", "not running"),
    ]
    supervised = [
        {"name": "job", "status": "down", "restarts": 3, "last_exit": 1, "alerting": True},
        {"name": "producer", "status": "running", "restarts": 1, "last_exit": 1, "alerting": False},
        {"name": "dashboard", "status": "running", "restarts": 6, "last_exit": 1, "alerting": True},
        {"name": "replay", "status": "stopped", "restarts": 6, "last_exit": 1, "alerting": True},
    ]
    assert [(f.rule, f.severity) for f in monitor.evaluate(checks, supervised, t)] == [
        ("down:cassandra:node", "critical"),
        ("no_batch", "critical"),
        ("quarantine", "warning"),
        ("lag", "warning"),
        ("producer", "critical"),
        ("restarts:job", "critical"),
        ("restarts:dashboard", "critical"),
    ]


def test_monitor_alerts_once_per_change_on_servers_that_do_not_answer(
    webhook: tuple[list[dict[str, Any]], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted, url = webhook
    for key, value in {**NOWHERE, "ALERT_WEBHOOK_URL": url, "STACK_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    (tmp_path / "supervise").mkdir()
    state = tmp_path / "supervise" / "job.json"
    state.write_text(json.dumps({"name": "job", "status": "down", "restarts": 6, "alerting": True}))
    m = monitor.Monitor(load())

    first = m.run_once()
    assert sorted((a.rule, a.state) for a in first) == [
        ("down:cassandra:node", "firing"),
        ("down:kafka:broker", "firing"),
        ("down:mongodb:server", "firing"),
        ("restarts:job", "firing"),
    ]
    assert sorted(p["rule"] for p in posted) == sorted(a.rule for a in first)
    assert m.run_once() == []  # still firing: no second notification
    assert len(posted) == 4

    state.unlink()  # the supervised job is healthy again
    (resolved,) = m.run_once()
    assert (resolved.rule, resolved.state) == ("restarts:job", "resolved")
    assert sorted(json.loads((tmp_path / "alerts.json").read_text())["active"]) == [
        "down:cassandra:node",
        "down:kafka:broker",
        "down:mongodb:server",
    ]
