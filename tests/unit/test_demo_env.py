"""What the demo's job starts with: scripts/demo.sh (through scripts/lib.sh and `.env`) resolved
by the job's own settings code, in a subprocess, with `--dry-run` (nothing is started).

`.env` always holds KAFKA_STARTING_OFFSETS (`latest`, the job's specified default), and lib.sh
exports all of `.env`: the demo's `earliest` must win over it, and a value the user set in
the environment must win over the demo's. The real run: tests/e2e/test_demo.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from common import envfile

ROOT = Path(__file__).resolve().parents[2]


def dry_run(tmp_path: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "KAFKA_STARTING_OFFSETS"}
    out = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh"), "--dry-run", "job"],
        cwd=ROOT,
        env={**base, "STACK_DIR": str(tmp_path / "stack"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_env_file_says_latest_for_the_job() -> None:
    # The precondition of the bug: what a fresh clone's .env (from .env.example) holds.
    assert envfile.parse((ROOT / ".env.example").read_text())["KAFKA_STARTING_OFFSETS"] == "latest"


def test_a_fresh_demo_checkpoint_starts_at_earliest_whatever_env_file_says(tmp_path: Path) -> None:
    assert dry_run(tmp_path, CHECKPOINT_DIR=str(tmp_path / "cp")) == (
        f"job: starting offsets earliest (fresh checkpoint only), checkpoints {tmp_path / 'cp'}\n"
        "would start: job\n"
    )


def test_a_starting_offset_set_by_the_user_wins_over_the_demo(tmp_path: Path) -> None:
    out = dry_run(tmp_path, KAFKA_STARTING_OFFSETS="latest", CHECKPOINT_DIR=str(tmp_path / "cp"))
    assert out == (
        f"job: starting offsets latest (fresh checkpoint only), checkpoints {tmp_path / 'cp'}\n"
        "would start: job\n"
    )
