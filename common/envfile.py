"""The project's `.env`: created from `.env.example` on first use, with fresh secrets.

Standard library only: the stack scripts call it before any virtualenv exists.
Precedence everywhere: a variable already in the process environment wins over `.env`.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shlex
import sys
from pathlib import Path

# APP_ROOT is set by scripts/lib.sh: under spark-submit this module may be loaded from a zip.
PROJECT_ROOT = Path(os.environ.get("APP_ROOT") or Path(__file__).resolve().parent.parent)
GENERATED = "<generated>"
_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def parse(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines; comments and blank lines are ignored, values are taken verbatim."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"malformed line in env file: {raw!r}")
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _secret(key: str) -> str:
    # The pseudonymisation key is 32 random bytes in hex; passwords are URL-safe tokens
    # (no characters that need escaping in a Mongo URI or a JAAS config).
    if key == "PSEUDONYM_KEY":
        return secrets.token_hex(32)
    return secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def ensure(root: Path = PROJECT_ROOT) -> Path:
    """Create `.env` if missing and append any variable `.env.example` gained since."""
    example = root / ".env.example"
    target = root / ".env"
    wanted = parse(example.read_text())
    present = parse(target.read_text()) if target.exists() else {}
    missing = [k for k in wanted if k not in present]
    if missing:
        lines = []
        if not target.exists():
            lines.append("# Generated from .env.example on first use. Never commit this file.")
        for key in missing:
            value = wanted[key]
            lines.append(f"{key}={_secret(key) if value == GENERATED else value}")
        with target.open("a") as handle:
            handle.write("\n".join(lines) + "\n")
        target.chmod(0o600)
    return target


def load(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """`.env` overlaid with the process environment (the environment wins).

    Variables documented only as comments in `.env.example` (optional settings) are
    taken from the environment too, so setting one there is never silently ignored.
    """
    path = ensure(root)
    values = parse(path.read_text())
    values.update(os.environ)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shell", action="store_true", help="print `export K='v'` lines for bash")
    args = parser.parse_args(argv)
    try:
        values = load()
    except (OSError, ValueError) as exc:
        print(f"env: {exc}", file=sys.stderr)
        return 2
    if args.shell:
        own = parse((PROJECT_ROOT / ".env").read_text())
        for key, value in values.items():
            if key not in own:
                continue
            print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
