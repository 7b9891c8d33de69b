"""Fixtures shared by every tier.

The stack is started once for the whole run (`scripts/stack.sh up`, idempotent) by
the session fixture `stack`; a server that cannot start fails the tests that need
it, it never turns them into skips.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import settings as settings_module
from common.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# Tests run against the same local servers as the demo, but in their own namespace:
# their topic, keyspace and database, so `make test` never clobbers demo data (and the
# demo never disturbs a test's exact assertions). Set up by the same code as the real ones.
os.environ.setdefault("KAFKA_TOPIC", "random_user_data_test")
os.environ.setdefault("CASSANDRA_KEYSPACE", "random_user_keyspace_test")
os.environ.setdefault("MONGO_DATABASE", "randomUserDB_test")
FIXTURES = (ROOT.parent / "shared" / "fixtures" / "randomuser").resolve()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test belongs to a tier, given by its folder.
    for item in items:
        for tier in ("unit", "integration", "e2e"):
            if f"tests/{tier}/" in str(item.path).replace(os.sep, "/"):
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"API fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def settings() -> Settings:
    return settings_module.load()


def run_stack(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run scripts/stack.sh; a failure raises with the script's own explanation."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "stack.sh"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/stack.sh {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The running local stack (Kafka, Cassandra, FerretDB), started once per run."""
    run_stack("up", timeout=1800)
    yield settings
