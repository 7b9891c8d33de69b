"""Dashboard settings: defaults, validation, and the accounts from the secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from common.settings import SettingsError
from dashboard.settings import DashboardUser, Role, from_mapping
from tests.unit.settings_env import minimal_env

ROOT = Path(__file__).resolve().parents[2]


def _env(**overrides: str) -> dict[str, str]:
    env = minimal_env(
        DASHBOARD_OPERATOR_PASSWORD="operator-secret-1", DASHBOARD_VIEWER_PASSWORD="viewer-secret-22"
    )
    env.update(overrides)
    return env


def test_defaults() -> None:
    s = from_mapping(_env(), ROOT)
    assert (s.host, s.port, s.refresh_seconds, s.min_count, s.top_countries, s.latest_default) == (
        "127.0.0.1",
        8501,
        5,
        5,
        10,
        10,
    )
    assert s.users == (
        DashboardUser("operator", Role.OPERATOR, SecretStr("operator-secret-1")),
        DashboardUser("viewer", Role.VIEWER, SecretStr("viewer-secret-22")),
    )
    assert s.cassandra.reader.user == "cassandra_reader"
    assert "secret" not in repr(s) and "secret" not in repr(s.users)


def test_a_hash_wins_over_the_clear_password() -> None:
    s = from_mapping(_env(DASHBOARD_VIEWER_PASSWORD_HASH="$2b$12$abcdefghijklmnopqrstuu"), ROOT)
    assert s.users[1].password.get_secret_value() == "$2b$12$abcdefghijklmnopqrstuu"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("DASHBOARD_REFRESH_SECONDS", "1", "DASHBOARD_REFRESH_SECONDS=1 is outside 2..300"),
        ("DASHBOARD_PORT", "http", "DASHBOARD_PORT='http' is not an integer"),
        ("DASHBOARD_MIN_COUNT", "0", "DASHBOARD_MIN_COUNT=0 is outside 1..1000000"),
        ("DASHBOARD_VIEWER_PASSWORD", "<generated>", "DASHBOARD_VIEWER_PASSWORD is not set"),
        ("DASHBOARD_OPERATOR_PASSWORD", "short", "DASHBOARD_OPERATOR_PASSWORD is too short"),
        (
            "DASHBOARD_VIEWER_USER",
            "operator",
            "DASHBOARD_OPERATOR_USER and DASHBOARD_VIEWER_USER must differ",
        ),
    ],
)
def test_invalid_values_name_the_variable(key: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        from_mapping(_env(**{key: value}), ROOT)
