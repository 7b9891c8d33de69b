"""The dashboard login: bcrypt only, both roles, unknown users, hashes from the secrets, logging."""

from __future__ import annotations

import logging

import bcrypt
import pytest
from pydantic import SecretStr

from dashboard.auth import Authenticator, Identity, hash_password
from dashboard.settings import DashboardUser, Role

OPERATOR_PW = "operator-password-1"
VIEWER_PW = "viewer-password-22"
ROUNDS = 4  # the cheapest bcrypt cost: the tests check the logic, not the cost


@pytest.fixture(scope="module")
def auth() -> Authenticator:
    return Authenticator(
        [
            DashboardUser("operator", Role.OPERATOR, SecretStr(OPERATOR_PW)),
            # A hash from the secrets is used as given, never re-hashed.
            DashboardUser("viewer", Role.VIEWER, SecretStr(hash_password(VIEWER_PW, ROUNDS).decode())),
        ],
        rounds=ROUNDS,
    )


def test_each_account_gets_its_role(auth: Authenticator) -> None:
    assert auth.authenticate("operator", OPERATOR_PW) == Identity("operator", Role.OPERATOR)
    assert auth.authenticate(" viewer ", VIEWER_PW) == Identity("viewer", Role.VIEWER)


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("operator", VIEWER_PW),
        ("operator", OPERATOR_PW.upper()),
        ("viewer", OPERATOR_PW),
        ("nobody", OPERATOR_PW),
        ("operator", ""),
        ("", OPERATOR_PW),
        ("operator", OPERATOR_PW + "x" * 200),
    ],
)
def test_anything_else_is_refused(auth: Authenticator, user: str, password: str) -> None:
    assert auth.authenticate(user, password) is None


def test_no_clear_password_is_kept(auth: Authenticator) -> None:
    for _role, hashed in auth._accounts.values():
        assert hashed.startswith(b"$2b$") and OPERATOR_PW.encode() not in hashed
    assert bcrypt.checkpw(OPERATOR_PW.encode(), auth._accounts["operator"][1])


def test_every_attempt_is_logged_without_the_password(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dashboard.auth"):
        auth.authenticate("operator", OPERATOR_PW)
        auth.authenticate("operator", "wrong-password-here")
        auth.authenticate("nobody\nINFO fake line", OPERATOR_PW)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "dashboard login ok: user='operator' role=operator"),
        ("WARNING", "dashboard login failed: user='operator' (wrong password)"),
        ("WARNING", "dashboard login failed: user='nobody\\nINFO fake line' (unknown user)"),
    ]
    assert all(
        OPERATOR_PW not in r.getMessage() and "wrong-password" not in r.getMessage() for r in caplog.records
    )
