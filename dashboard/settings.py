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
from typing import Annotated

from pydantic import Field, SecretStr, model_validator

from common import envfile
from common.settings import CassandraSettings, EnvModel, MinCount, Port
from common.settings import from_mapping as common_from_mapping

# The refresh interval a user may pick in the page; queries are cached for at most
# MIN_REFRESH_SECONDS, so a cached answer is never older than one refresh.
MIN_REFRESH_SECONDS = 2
MAX_REFRESH_SECONDS = 300
MIN_PASSWORD_LENGTH = 12


class Role(StrEnum):
    """operator: aggregates and the latest users; viewer: aggregates only, small counts hidden."""

    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True)
class DashboardUser:
    name: str
    role: Role
    # plain text from the secrets, or a bcrypt hash ($2b$...); hashed once at start
    password: SecretStr

    def __repr__(self) -> str:  # never print a password, even by accident
        return f"DashboardUser(name={self.name!r}, role={self.role.value!r}, password='***')"


class DashboardEnv(EnvModel):
    """The variables of the dashboard (.env.example, "Dashboard")."""

    dashboard_host: str = "127.0.0.1"
    dashboard_port: Port = 8501
    dashboard_refresh_seconds: Annotated[int, Field(ge=MIN_REFRESH_SECONDS, le=MAX_REFRESH_SECONDS)] = 5
    dashboard_min_count: MinCount = 5
    dashboard_top_countries: int = Field(10, ge=1, le=100)
    dashboard_latest_users: int = Field(10, ge=1, le=500)
    dashboard_operator_user: str = Role.OPERATOR.value
    dashboard_operator_password: SecretStr = SecretStr("")
    # A bcrypt hash (e.g. from `python -m dashboard.auth hash`) keeps the clear password out of .env.
    dashboard_operator_password_hash: SecretStr = SecretStr("")
    dashboard_viewer_user: str = Role.VIEWER.value
    dashboard_viewer_password: SecretStr = SecretStr("")
    dashboard_viewer_password_hash: SecretStr = SecretStr("")

    def secret(self, role: Role) -> SecretStr:
        """The role's hash if set, else its clear password."""
        hashed: SecretStr = getattr(self, f"dashboard_{role.value}_password_hash")
        return hashed if hashed.get_secret_value() else getattr(self, f"dashboard_{role.value}_password")

    @model_validator(mode="after")
    def _accounts(self) -> DashboardEnv:
        for role in Role:
            prefix = f"DASHBOARD_{role.value.upper()}"
            secret = self.secret(role).get_secret_value()
            if not secret or secret == envfile.GENERATED:
                raise ValueError(f"{prefix}_PASSWORD is not set (run `make env` or set it in .env)")
            if len(secret) < MIN_PASSWORD_LENGTH and not secret.startswith("$2"):
                raise ValueError(
                    f"{prefix}_PASSWORD is too short ({MIN_PASSWORD_LENGTH} characters at least)"
                )
        if self.dashboard_operator_user == self.dashboard_viewer_user:
            raise ValueError("DASHBOARD_OPERATOR_USER and DASHBOARD_VIEWER_USER must differ")
        return self


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
    # Where the alert file and the supervisors' state live (STACK_DIR).
    stack_dir: Path = Path(".stack")

    def __repr__(self) -> str:
        return f"DashboardSettings(host={self.host!r}, port={self.port}, users={len(self.users)})"


def from_mapping(env: Mapping[str, str], root: Path = envfile.PROJECT_ROOT) -> DashboardSettings:
    e = DashboardEnv.from_env(env)
    users = tuple(
        DashboardUser(name=getattr(e, f"dashboard_{role.value}_user"), role=role, password=e.secret(role))
        for role in Role
    )
    # The shared settings validate every account of the project; the dashboard keeps Cassandra.
    common = common_from_mapping(env, root)
    return DashboardSettings(
        host=e.dashboard_host,
        port=e.dashboard_port,
        refresh_seconds=e.dashboard_refresh_seconds,
        min_count=e.dashboard_min_count,
        top_countries=e.dashboard_top_countries,
        latest_default=e.dashboard_latest_users,
        users=users,
        cassandra=common.cassandra,
        stack_dir=common.stack.stack_dir,
    )


def load(root: Path = envfile.PROJECT_ROOT) -> DashboardSettings:
    """Settings from `.env` overlaid with the environment (the environment wins)."""
    return from_mapping(envfile.load(root), root)
