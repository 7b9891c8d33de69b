"""Typed settings of the dashboard, read once from the environment and `.env`.

The dashboard's own knobs (address, refresh, small-count threshold) and its login
accounts live here; the Cassandra connection comes from common.settings, so the
dashboard reads with the same `dashboard_reader` account the stack set up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from common import envfile
from common.settings import CassandraSettings, SettingsError, env_int
from common.settings import from_mapping as common_from_mapping

# The refresh interval a user may pick in the page; queries are cached for at most
# MIN_REFRESH_SECONDS, so a cached answer is never older than one refresh.
MIN_REFRESH_SECONDS = 2
MAX_REFRESH_SECONDS = 300


class Role(StrEnum):
    """operator: aggregates and the latest users; viewer: aggregates only, small counts hidden."""

    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True)
class DashboardUser:
    name: str
    role: Role
    password: str  # plain text from the secrets, or a bcrypt hash ($2b$...); hashed once at start

    def __repr__(self) -> str:  # never print a password, even by accident
        return f"DashboardUser(name={self.name!r}, role={self.role.value!r}, password='***')"


@dataclass(frozen=True)
class DashboardSettings:
    host: str
    port: int
    refresh_seconds: int
    min_count: int
    top_countries: int
    latest_default: int
    users: tuple[DashboardUser, ...]
    cassandra: CassandraSettings

    def __repr__(self) -> str:
        return f"DashboardSettings(host={self.host!r}, port={self.port}, users={len(self.users)})"


def _user(env: Mapping[str, str], role: Role) -> DashboardUser:
    prefix = f"DASHBOARD_{role.value.upper()}"
    name = env.get(f"{prefix}_USER") or role.value
    # A bcrypt hash (e.g. from `python -m dashboard.auth hash`) keeps the clear password out of .env.
    secret = env.get(f"{prefix}_PASSWORD_HASH") or env.get(f"{prefix}_PASSWORD", "")
    if not secret or secret == envfile.GENERATED:
        raise SettingsError(f"{prefix}_PASSWORD is not set (run `make env` or set it in .env)")
    if len(secret) < 12 and not secret.startswith("$2"):
        raise SettingsError(f"{prefix}_PASSWORD is too short (12 characters at least)")
    return DashboardUser(name=name, role=role, password=secret)


def from_mapping(env: Mapping[str, str], root: Path = envfile.PROJECT_ROOT) -> DashboardSettings:
    users = tuple(_user(env, role) for role in Role)
    if len({u.name for u in users}) != len(users):
        raise SettingsError("DASHBOARD_OPERATOR_USER and DASHBOARD_VIEWER_USER must differ")
    return DashboardSettings(
        host=env.get("DASHBOARD_HOST") or "127.0.0.1",
        port=env_int(env, "DASHBOARD_PORT", 1, 65535, default=8501),
        refresh_seconds=env_int(
            env, "DASHBOARD_REFRESH_SECONDS", MIN_REFRESH_SECONDS, MAX_REFRESH_SECONDS, default=5
        ),
        min_count=env_int(env, "DASHBOARD_MIN_COUNT", 1, 1_000_000, default=5),
        top_countries=env_int(env, "DASHBOARD_TOP_COUNTRIES", 1, 100, default=10),
        latest_default=env_int(env, "DASHBOARD_LATEST_USERS", 1, 500, default=10),
        users=users,
        # The shared settings validate every account of the project; the dashboard keeps Cassandra.
        cassandra=common_from_mapping(env, root).cassandra,
    )


def load(root: Path = envfile.PROJECT_ROOT) -> DashboardSettings:
    """Settings from `.env` overlaid with the environment (the environment wins)."""
    return from_mapping(envfile.load(root), root)
