"""The access matrix in docs/GOVERNANCE.md is the one in ops/access_matrix.py, and the setup
code grants exactly what the matrix says (no server needed)."""

from __future__ import annotations

from pydantic import SecretStr

from common import envfile
from common.settings import Account, from_mapping
from ops import access_matrix, cassandra_setup, kafka_admin


def _example_env() -> dict[str, str]:
    env = envfile.parse((envfile.PROJECT_ROOT / ".env.example").read_text())
    return {k: ("0" * 64 if v == envfile.GENERATED else v) for k, v in env.items()}


def test_document_table_is_generated_from_the_matrix() -> None:
    assert access_matrix.document_table() == access_matrix.render()


def test_setup_code_grants_what_the_matrix_says() -> None:
    env = _example_env()
    s = from_mapping(env)
    eraser = Account(env["CASSANDRA_ERASER_USER"], SecretStr("x"))
    cassandra = {
        (g.role, g.resource, g.permission)
        for grants in cassandra_setup.desired_grants(s.cassandra, eraser).values()
        for g in grants
    }
    assert cassandra == access_matrix.expected("cassandra", env)
    kafka = {
        (
            g.principal.removeprefix("User:"),
            f"{g.resource_type}:{g.resource_name} ({g.pattern_type})",
            g.operation,
        )
        for g in kafka_admin.desired_grants(s.kafka)
    }
    assert kafka == access_matrix.expected("kafka", env)
