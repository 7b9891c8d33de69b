"""The project's `.env`: created from `.env.example` on first use, with fresh secrets.

Standard library only: the stack scripts call it before any virtualenv exists.
Precedence everywhere: a variable already in the process environment wins over `.env`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shlex
import stat
import sys
import tempfile
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


def _write_private(target: Path, text: str, *, exclusive: bool) -> None:
    """Write `text` as `target`, mode 0600 from its first byte and never half-written.

    The bytes go to a temporary file created 0600 (mkstemp: O_CREAT|O_EXCL, whatever the umask)
    in the same folder, are flushed to disk, then take the target's name in one step: a link that
    fails if the target appeared meanwhile (`exclusive`, first creation) or a rename over it.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, target)  # FileExistsError when another process created it first
        else:
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def ensure(root: Path = PROJECT_ROOT) -> Path:
    """Create `.env` if missing and append any variable `.env.example` gained since.

    The file holds secrets: it is created 0600 from its first byte, rewritten atomically, and an
    existing one readable by others (e.g. copied by hand) is tightened to 0600.
    """
    example = root / ".env.example"
    target = root / ".env"
    wanted = parse(example.read_text())
    try:
        current = target.read_text()
    except FileNotFoundError:
        current = None
    if current is not None and stat.S_IMODE(target.stat().st_mode) & 0o077:
        target.chmod(0o600)
    present = parse(current) if current is not None else {}
    missing = [k for k in wanted if k not in present]
    if missing:
        lines = []
        if current is None:
            lines.append("# Generated from .env.example on first use. Never commit this file.")
        for key in missing:
            value = wanted[key]
            lines.append(f"{key}={_secret(key) if value == GENERATED else value}")
        head = current or ""
        if head and not head.endswith("\n"):
            head += "\n"
        try:
            _write_private(target, head + "\n".join(lines) + "\n", exclusive=current is None)
        except FileExistsError:  # another process created it between our read and our write
            return ensure(root)
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
