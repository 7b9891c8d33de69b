"""The dashboard page (Streamlit AppTest): the health panel's alert text and the login throttle.

Same setup as tests/integration/test_dashboard_app.py (its fixtures: the page runs as the real
`dashboard_reader` on a seeded keyspace of its own). An alert carrying a Spark stack trace is
one escaped line for a viewer, who never receives the trace; an operator can open it as plain
code. Repeated wrong passwords lock the login, even for the right password, without a check.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from cassandra.cluster import Session

from dashboard.settings import DashboardSettings, Role
from ops.alerts import Alert, AlertStore
from tests import dashboard_seed as seed
from tests.integration.test_dashboard_app import (  # noqa: F401 (fixtures)
    _account,
    _all_protos,
    _login,
    admin,
    app_env,
    dash_cassandra,
)

TRACE = (
    "job exited with code 1: java.io.IOException: *broken* pipe at $anonfun$run$1 (TID 7) "
    "[docs](http://x) :red[alarm] # StreamingQueryException: Job aborted due to stage failure\n"
    "\tat org.apache.spark.sql.execution.streaming.MicroBatchExecution.$anonfun$runActivatedStream$2"
    "(MicroBatchExecution.scala:285)\n"
    "\tat internal.host.name:7077 secret_looking_log_line\n"
)
BANNER = (
    "Alert critical `restarts:job`: job exited with code 1\\: java\\.io\\.IOException\\: "
    "\\*broken\\* pipe at \\$anonfun\\$run\\$1 \\(TID 7\\) "
    "\\[docs\\]\\(http\\:\\/\\/x\\) \\:red\\[alarm\\] \\# "
    "StreamingQueryException\\: Job aborted due to…"
)


@pytest.fixture
def trace_alert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AlertStore(tmp_path / "alerts.json")
    store.record(Alert("restarts:job", "critical", "firing", TRACE, details={"restarts": 5, "pid": 4242}))
    monkeypatch.setenv("ALERT_FILE", str(tmp_path / "alerts.json"))


@pytest.mark.usefixtures("trace_alert")
def test_a_viewer_sees_one_escaped_line_of_a_stack_trace(
    app_env: DashboardSettings,  # noqa: F811
    admin: Session,  # noqa: F811
) -> None:
    seed.seed(admin)
    at = _login(*_account(app_env, Role.VIEWER))
    assert not at.exception
    assert [w.value for w in at.warning] == [BANNER]
    assert [e.label for e in at.expander] == ["All countries"] and at.code.len == 0
    sent = _all_protos(at)
    assert "MicroBatchExecution" not in sent and "secret_looking_log_line" not in sent
    assert re.search(r"(?<!\\)\$", at.warning[0].value) is None  # every dollar escaped: no LaTeX


@pytest.mark.usefixtures("trace_alert")
def test_an_operator_can_open_the_whole_alert_as_plain_code(
    app_env: DashboardSettings,  # noqa: F811
    admin: Session,  # noqa: F811
) -> None:
    seed.seed(admin)
    at = _login(*_account(app_env, Role.OPERATOR))
    assert not at.exception
    assert [w.value for w in at.warning] == [BANNER]
    assert [e.label for e in at.expander] == ["All countries", "Details of restarts\\:job"]
    (code,) = at.code
    assert code.language == "plaintext"  # no highlighting, no Markdown
    assert code.value.startswith("rule: restarts:job\nseverity: critical\nstate: firing\nat: ")
    assert code.value.endswith(f"summary:\n{TRACE}\ndetails:\n" + '{\n  "pid": 4242,\n  "restarts": 5\n}')


def test_repeated_wrong_passwords_lock_the_login(
    app_env: DashboardSettings,  # noqa: F811
    admin: Session,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed.seed(admin)
    user, password = _account(app_env, Role.OPERATOR)
    errors = []
    with caplog.at_level(logging.INFO, logger="dashboard"):
        for _ in range(5):  # the 5th in a row locks the name for 2 s (dashboard.auth.USER_POLICY)
            errors += [e.value for e in _login(user, password + "x").error]
        locked = _login(user, password)  # the right password, during the lock
    assert errors == ["Wrong user name or password."] * 5
    # What is left of the 2 s lock, rounded up: 1 s when the machine took over a second to log in.
    assert [e.value for e in locked.error] in (
        ["Too many failed logins: try again in 2 s."],
        ["Too many failed logins: try again in 1 s."],
    )
    assert [t.label for t in locked.text_input] == ["User", "Password"] and locked.metric.len == 0
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("dashboard")]
    # The same rounding in the log: 1 s left when the machine was slow (seen on a slow host).
    assert messages[-1] in (
        f"dashboard login throttled: user={user!r} client=local retry in 2 s",
        f"dashboard login throttled: user={user!r} client=local retry in 1 s",
    )
    assert messages.count(f"dashboard login failed: user={user!r} (wrong password)") == 5
    assert not any(password in m for m in messages)
