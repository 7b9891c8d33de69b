"""The repository stands alone: fixtures inside it, no path of one machine, the scripts' JDK lookup.

A clone with nothing beside it must run `make test`: no file of the project may reach outside
the repository (a fixture folder beside it, a work or home directory) or name one machine's JDK.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from common import envfile
from tests.conftest import FIXTURES, ROOT, java17_home

# Built from pieces, so this file does not match itself.
OUTSIDE = re.compile(
    "|".join(
        [
            re.escape("../" + "sha" + "red"),
            r"""["']""" + "sha" + "red" + r"""["']""",
            re.escape("/" + "work/"),
            re.escape("/" + "root/"),
            re.escape("/" + "home/"),
            re.escape("/usr/lib/" + "jvm"),
        ]
    )
)
# The one place the default JDK location is written (scripts/lib.sh and the tests read it), and
# the Makefile's copy of it for `make test`'s JAVA_HOME.
JDK_DEFAULT_HOLDERS = {"conf/versions.env", "Makefile"}


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(p for p in listed if not p.startswith("tests/fixtures/") and (ROOT / p).is_file())


def test_fixtures_are_inside_the_repository(fixtures_dir: Path) -> None:
    assert fixtures_dir == FIXTURES == ROOT / "tests" / "fixtures" / "randomuser"
    assert fixtures_dir.resolve().is_relative_to(ROOT.resolve())
    names = sorted(p.name for p in fixtures_dir.iterdir())
    nationalities = [
        "AU",
        "BR",
        "CA",
        "CH",
        "DE",
        "DK",
        "ES",
        "FI",
        "FR",
        "GB",
        "IE",
        "IN",
        "IR",
        "MX",
        "NL",
        "NO",
        "NZ",
        "RS",
        "TR",
        "UA",
        "US",
    ]
    assert names == sorted(
        ["error-429.json", "error-503.html", "mixed-10.json", "mixed-10-page2.json"]
        + [f"nat-{n}.json" for n in nationalities]
    )
    readme = (ROOT / "tests" / "fixtures" / "README.md").read_text(encoding="utf-8")
    assert "Random User API 1.4" in readme and "copied" in readme


def test_no_project_file_names_a_path_outside_the_repository() -> None:
    found = []
    for rel in _project_files():
        try:
            text = (ROOT / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            match = OUTSIDE.search(line)
            if match and not (rel in JDK_DEFAULT_HOLDERS and match.group(0).startswith("/usr/lib/")):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []


def _jdk(root: Path, version: str) -> Path:
    root.mkdir()
    (root / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{version}"\n', encoding="utf-8")
    return root


def test_java17_home_is_the_scripts_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jdk17 = _jdk(tmp_path / "jdk17", "17.0.99")
    monkeypatch.setenv("JAVA_HOME_17", str(jdk17))
    assert java17_home() == jdk17
    monkeypatch.setenv("JAVA_HOME_17", str(_jdk(tmp_path / "jdk21", "21.0.4")))
    wrong = r"^Java 17 not found at .*jdk21 \(set JAVA_HOME_17 to a JDK 17\)$"
    with pytest.raises(RuntimeError, match=wrong):
        java17_home()
    monkeypatch.delenv("JAVA_HOME_17")
    if "JAVA_HOME_17" not in envfile.load(ROOT):  # else `.env` sets it, and it wins
        default = envfile.parse((ROOT / "conf" / "versions.env").read_text(encoding="utf-8"))
        assert str(java17_home()) == default["JAVA_HOME_DEFAULT"]
