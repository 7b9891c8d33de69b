"""Alerts: one record shape, the channels that deliver it, and a file the dashboard reads.

Channels (configured in the environment, docs/OPERATIONS.md):
- log: always;
- webhook: ALERT_WEBHOOK_URL, an HTTP POST of the alert as JSON (Slack/Teams/Alertmanager
  bridges, or any HTTP endpoint);
- e-mail: ALERT_SMTP_HOST (+ _PORT, _FROM, _TO, optional _USER/_PASSWORD, _STARTTLS).

Every alert also lands in ALERT_FILE (default `.stack/alerts.json`): the rules firing now and
the recent history, so the dashboard shows them without a database (an alert about Cassandra
being down cannot be stored in Cassandra). A channel that fails is logged; the others still
get the alert.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import smtplib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import requests
from pydantic import SecretStr, field_validator, model_validator

from common.settings import EnvModel, Flag, Port

log = logging.getLogger(__name__)

HISTORY = 200
HTTP_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 10.0


NO_PASSWORD = SecretStr("")


@dataclass(frozen=True)
class Alert:
    rule: str  # stable id of what is wrong, e.g. "down:kafka:broker", "no_batch", "restarts:job"
    severity: str  # critical | warning
    state: str  # firing | resolved | event (a one-off notice, e.g. one restart: history only)
    summary: str
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    details: dict[str, Any] = field(default_factory=dict)

    def subject(self) -> str:
        return f"[{self.state.upper()} {self.severity}] {self.rule}: {self.summary}"[:200]


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class LogChannel:
    name = "log"

    def send(self, alert: Alert) -> None:
        level = logging.INFO if alert.state == "resolved" else logging.WARNING
        if alert.severity == "critical" and alert.state == "firing":
            level = logging.ERROR
        log.log(level, "ALERT %s", alert.subject())


@dataclass
class WebhookChannel:
    url: str
    name: str = "webhook"

    def send(self, alert: Alert) -> None:
        response = requests.post(self.url, json=asdict(alert), timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()


@dataclass
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: list[str]
    user: str = ""
    password: SecretStr = NO_PASSWORD
    starttls: bool = False
    name: str = "email"

    def send(self, alert: Alert) -> None:
        msg = EmailMessage()
        msg["Subject"] = alert.subject()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(
            f"{alert.summary}\n\nrule: {alert.rule}\nseverity: {alert.severity}\nstate: {alert.state}\n"
            f"at: {alert.at}\n\n{json.dumps(alert.details, indent=2, default=str)}\n"
        )
        with smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_S) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password.get_secret_value())
            smtp.send_message(msg)


class AlertSettings(EnvModel):
    """The alert channels and file (.env.example, "Monitoring and alerts")."""

    alert_webhook_url: str = ""
    alert_smtp_host: str = ""
    alert_smtp_port: Port = 25
    alert_smtp_from: str = "rua-monitor@localhost"
    alert_smtp_to: str = ""
    alert_smtp_user: str = ""
    alert_smtp_password: SecretStr = SecretStr("")
    alert_smtp_starttls: Flag = False
    alert_file: str = ""

    @field_validator("alert_webhook_url", "alert_smtp_host", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def recipients(self) -> list[str]:
        return [r.strip() for r in self.alert_smtp_to.split(",") if r.strip()]

    @model_validator(mode="after")
    def _smtp(self) -> AlertSettings:
        if self.alert_smtp_host and not self.recipients:
            raise ValueError("ALERT_SMTP_HOST is set but ALERT_SMTP_TO (comma-separated) is empty")
        return self


def channels_from_env(env: Mapping[str, str]) -> list[Channel]:
    a = AlertSettings.from_env(env)
    channels: list[Channel] = [LogChannel()]
    if a.alert_webhook_url:
        channels.append(WebhookChannel(a.alert_webhook_url))
    if a.alert_smtp_host:
        channels.append(
            SmtpChannel(
                host=a.alert_smtp_host,
                port=a.alert_smtp_port,
                sender=a.alert_smtp_from,
                recipients=a.recipients,
                user=a.alert_smtp_user,
                password=a.alert_smtp_password,
                starttls=a.alert_smtp_starttls,
            )
        )
    return channels


def alert_file(env: Mapping[str, str], stack_dir: Path) -> Path:
    raw = AlertSettings.from_env(env).alert_file
    return Path(raw) if raw else stack_dir / "alerts.json"


class AlertStore:
    """`{"active": {rule: alert}, "history": [alert, ...]}` in one JSON file, written atomically
    under an exclusive lock (the monitor and the supervisors write it concurrently)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"active": {}, "history": []}
        except ValueError:
            log.warning("%s is not valid JSON: starting it over", self.path)
            return {"active": {}, "history": []}
        return {"active": data.get("active") or {}, "history": data.get("history") or []}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, data: dict[str, Any], alert: Alert) -> None:
        if alert.state == "firing":
            data["active"][alert.rule] = asdict(alert)
        elif alert.state == "resolved":
            data["active"].pop(alert.rule, None)
        data["history"] = [*data["history"], asdict(alert)][-HISTORY:]
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        tmp.replace(self.path)

    def record(self, alert: Alert) -> None:
        with self._locked():
            self._write(self.read(), alert)

    def change(self, alert: Alert) -> bool:
        """Record a firing alert whose rule is not active, or the resolution of an active one,
        in one locked step; False (nothing recorded) when the rule is already in that state, so
        two writers of one rule (a supervisor and the monitor) notify it once."""
        with self._locked():
            data = self.read()
            if (alert.state == "firing") == (alert.rule in data["active"]):
                return False
            self._write(data, alert)
            return True

    def active(self) -> dict[str, dict[str, Any]]:
        return dict(self.read()["active"])


def dispatch(alert: Alert, channels: list[Channel], store: AlertStore | None) -> list[str]:
    """Send to every channel; returns the failures ("channel: reason"), never raises."""
    failures = []
    if store is not None:
        try:
            store.record(alert)
        except OSError as exc:
            failures.append(f"file: {exc}")
    for channel in channels:
        try:
            channel.send(alert)
        except Exception as exc:  # one broken channel must not silence the others
            failures.append(f"{channel.name}: {type(exc).__name__}: {exc}")
    for failure in failures:
        log.error("alert %s not delivered by %s", alert.rule, failure)
    return failures
