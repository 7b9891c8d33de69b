"""Login of the dashboard: named accounts, bcrypt-checked passwords, every attempt logged.

Passwords come from the secrets (`.env`): a clear value is hashed once per process, a
`..._PASSWORD_HASH` is used as given; a login is always a `bcrypt.checkpw` against a hash,
never a comparison of clear text. An unknown user costs the same bcrypt check as a known
one, so the answer time does not tell which accounts exist. The log names the user and the
outcome, never the password.

    python -m dashboard.auth hash     # prints a bcrypt hash for DASHBOARD_*_PASSWORD_HASH
"""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import bcrypt

from dashboard.settings import DashboardUser, Role

log = logging.getLogger(__name__)

BCRYPT_ROUNDS = 12
MAX_INPUT = 128  # bcrypt reads 72 bytes at most; longer input is refused, not truncated silently


@dataclass(frozen=True)
class Identity:
    """Who is logged in (kept in the Streamlit session state)."""

    user: str
    role: Role


def _printable(name: str) -> str:
    # A user name typed into the form goes to the log: no control characters, bounded length.
    return repr(name[:64])


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> bytes:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds))


class Authenticator:
    """Checks a user name and password against the configured accounts."""

    def __init__(self, users: Iterable[DashboardUser], rounds: int = BCRYPT_ROUNDS) -> None:
        self._accounts: dict[str, tuple[Role, bytes]] = {}
        for user in users:
            stored = user.password.encode()
            hashed = stored if user.password.startswith("$2") else hash_password(user.password, rounds)
            self._accounts[user.name] = (user.role, hashed)
        # Checked when the user is unknown, so both paths cost one bcrypt verification.
        self._decoy = hash_password(secrets.token_urlsafe(24), rounds)

    def authenticate(self, user: str, password: str) -> Identity | None:
        user = user.strip()
        if not user or not password or len(password.encode()) > MAX_INPUT or len(user) > MAX_INPUT:
            log.warning("dashboard login failed: user=%s (empty or oversized input)", _printable(user))
            return None
        role, hashed = self._accounts.get(user, (None, self._decoy))
        ok = bcrypt.checkpw(password.encode(), hashed)
        if role is None or not ok:
            reason = "unknown user" if role is None else "wrong password"
            log.warning("dashboard login failed: user=%s (%s)", _printable(user), reason)
            return None
        log.info("dashboard login ok: user=%s role=%s", _printable(user), role.value)
        return Identity(user=user, role=role)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.auth", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["hash"], help="print a bcrypt hash of a password read from the tty"
    )
    parser.parse_args(argv)
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        print("refused: 12 characters at least", file=sys.stderr)
        return 1
    print(hash_password(password).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
