"""Login of the dashboard: named accounts, bcrypt-checked passwords, every attempt logged.

Passwords come from the secrets (`.env`): a clear value is hashed once per process, a
`..._PASSWORD_HASH` is used as given; a login is always a `bcrypt.checkpw` against a hash,
never a comparison of clear text. An unknown user costs the same bcrypt check as a known
one, so the answer time does not tell which accounts exist. The log names the user and the
outcome, never the password. `LoginThrottle` slows repeated failures per user name and per
client address (docs/DASHBOARD.md, "Login").

    python -m dashboard.auth hash     # prints a bcrypt hash for DASHBOARD_*_PASSWORD_HASH
"""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable
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
            secret = user.password.get_secret_value()
            hashed = secret.encode() if secret.startswith("$2") else hash_password(secret, rounds)
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


@dataclass(frozen=True)
class ThrottlePolicy:
    """From the `free`-th failure in a row on, each failure locks the key for `base_s` seconds,
    doubled at every failure up to `max_s`; a key without failure for `forget_after_s` starts over."""

    free: int
    base_s: float
    max_s: float
    forget_after_s: float = 900.0

    def lock_s(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** min(failures - self.free, 32)))


# Per user name: a password guesser on one account. Per client address: a guesser spraying many
# names. The client policy is looser because every local user shares 127.0.0.1 (the default bind).
USER_POLICY = ThrottlePolicy(free=5, base_s=2.0, max_s=300.0)
CLIENT_POLICY = ThrottlePolicy(free=20, base_s=1.0, max_s=60.0)


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    """Slows repeated login failures per user name and per client address.

    In-process memory (one dashboard process; forgotten at a restart), bounded to `max_keys`
    entries (the oldest go first). While a key is locked no password is checked at all, so a
    guesser also costs no bcrypt work. A success clears its user's record, not its client's.
    """

    def __init__(
        self,
        user_policy: ThrottlePolicy = USER_POLICY,
        client_policy: ThrottlePolicy = CLIENT_POLICY,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policies = {"user": user_policy, "client": client_policy}
        self._records: dict[tuple[str, str], _Record] = {}
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()

    def _keys(self, user: str, client: str) -> list[tuple[str, str]]:
        return [("user", user.strip()[:MAX_INPUT]), ("client", client)]

    def _current(self, key: tuple[str, str], now: float) -> _Record | None:
        record = self._records.get(key)
        policy = self._policies[key[0]]
        if record is not None and now >= record.locked_until and now - record.last > policy.forget_after_s:
            del self._records[key]
            return None
        return record

    def retry_after(self, user: str, client: str) -> float:
        """Seconds before this user name from this client may try again (0: now)."""
        with self._lock:
            now = self._clock()
            waits = [r.locked_until - now for k in self._keys(user, client) if (r := self._current(k, now))]
            return max([0.0, *waits])

    def failed(self, user: str, client: str) -> float:
        """Count a failure; returns the lock it sets (0 while failures are still free)."""
        with self._lock:
            now = self._clock()
            lock = 0.0
            for key in self._keys(user, client):
                record = self._current(key, now) or _Record()
                record.failures += 1
                record.last = now
                record.locked_until = now + self._policies[key[0]].lock_s(record.failures)
                lock = max(lock, record.locked_until - now)
                self._records.pop(key, None)
                self._records[key] = record  # the newest last, so eviction drops the oldest
            while len(self._records) > self._max_keys:
                del self._records[next(iter(self._records))]
            return lock

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._records.pop(("user", user.strip()[:MAX_INPUT]), None)


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
