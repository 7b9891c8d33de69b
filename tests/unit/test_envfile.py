"""`.env` holds the secrets: 0600 from its first byte, written whole, an existing loose one tightened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import envfile

EXAMPLE = "# comment\nKAFKA_ADMIN_USER=admin\nKAFKA_ADMIN_PASSWORD=<generated>\nMONGO_PORT=27017\n"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    old = os.umask(0o022)  # the usual umask: a plain open() would make the file world-readable
    try:
        yield tmp_path
    finally:
        os.umask(old)


def _no_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chmod after the write (what a file created with the default umask needs) is refused."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError("chmod refused by the test: the mode must be right from creation")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)


def test_a_new_env_is_private_from_creation(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_chmod(monkeypatch)
    target = envfile.ensure(root)
    assert target == root / ".env"
    assert _mode(target) == 0o600
    values = envfile.parse(target.read_text())
    assert sorted(values) == ["KAFKA_ADMIN_PASSWORD", "KAFKA_ADMIN_USER", "MONGO_PORT"]
    assert (values["KAFKA_ADMIN_USER"], values["MONGO_PORT"]) == ("admin", "27017")
    assert len(values["KAFKA_ADMIN_PASSWORD"]) == 24 and values["KAFKA_ADMIN_PASSWORD"] != "<generated>"
    assert sorted(p.name for p in root.iterdir()) == [".env", ".env.example"]  # no temporary left


def test_a_loose_existing_env_is_tightened_even_when_complete(root: Path) -> None:
    target = root / ".env"
    text = "KAFKA_ADMIN_USER=admin\nKAFKA_ADMIN_PASSWORD=kept\nMONGO_PORT=27017\n"
    target.write_text(text)
    target.chmod(0o644)
    envfile.ensure(root)
    assert _mode(target) == 0o600
    assert target.read_text() == text  # nothing missing: content untouched


def test_missing_variables_are_added_whole_and_private(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = root / ".env"
    target.write_text("KAFKA_ADMIN_USER=me\nKAFKA_ADMIN_PASSWORD=kept")  # no final newline
    target.chmod(0o600)
    inode = target.stat().st_ino
    _no_chmod(monkeypatch)
    envfile.ensure(root)
    assert target.read_text() == "KAFKA_ADMIN_USER=me\nKAFKA_ADMIN_PASSWORD=kept\nMONGO_PORT=27017\n"
    assert _mode(target) == 0o600
    assert target.stat().st_ino != inode  # a new file renamed over the old one, not appended in place
    assert sorted(p.name for p in root.iterdir()) == [".env", ".env.example"]


def test_a_failed_write_leaves_the_old_env_and_no_temporary(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = root / ".env"
    target.write_text("KAFKA_ADMIN_USER=me\n")
    target.chmod(0o600)

    def full_disk(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        envfile.ensure(root)
    assert target.read_text() == "KAFKA_ADMIN_USER=me\n"
    assert sorted(p.name for p in root.iterdir()) == [".env", ".env.example"]
