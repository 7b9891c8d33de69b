"""`python -m analytics` (`make insights`): run the analyses, write reports/insights.{md,html,json}.

The Cassandra analyses run in this process as the read-only account; the Delta ones in a
Spark of their own, started through scripts/spark-submit.sh (the pinned jars), which runs
analytics/spark_job.py and hands back JSON. This module does not import pyspark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from analytics import report
from analytics.catalogue import BY_NAME, selected
from analytics.model import STORES, Outcome, Sources
from analytics.run import outcomes_from_json, outcomes_to_json, run_analyses
from common import job_settings
from common import settings as common_settings
from common.clients import cassandra_session
from common.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def _run_cassandra(settings: Settings, src: Sources, names: Sequence[str] | None) -> list[Outcome]:
    c = settings.cassandra
    with cassandra_session(c, c.reader) as cassandra:
        return run_analyses(
            selected(names, "cassandra"), replace(src, cassandra=cassandra, keyspace=c.keyspace)
        )


def _run_delta_subprocess(names: Sequence[str] | None, src: Sources) -> list[Outcome]:
    """Run the Delta analyses under scripts/spark-submit.sh (pinned jars), read back their JSON."""
    with tempfile.TemporaryDirectory(prefix="insights-") as tmp:
        out = Path(tmp) / "delta.json"
        cmd = [
            str(ROOT / "scripts" / "spark-submit.sh"),
            str(ROOT / "analytics" / "spark_job.py"),
            "--delta-json",
            str(out),
            "--top",
            str(src.top),
            "--days",
            str(src.days),
            "--versions-ago",
            str(src.versions_ago),
            "--as-of-hours",
            str(src.as_of_hours),
            "--now",
            src.now.isoformat(),
        ]
        for name in names or ():
            cmd += ["--only", name]
        log.info("running the Delta analyses through scripts/spark-submit.sh (a Spark start: ~30-60 s)")
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            error = f"spark-submit exited {proc.returncode}: {tail}"
            return [Outcome(a.name, None, error) for a in selected(names, "delta")]
        return outcomes_from_json(json.loads(out.read_text()))


def _aware(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the insight analyses and write the report.")
    parser.add_argument("--only", action="append", choices=sorted(BY_NAME), help="run only this analysis")
    parser.add_argument(
        "--stores", default=",".join(STORES), help="comma-separated: cassandra,delta (default: both)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="report folder (default reports/)")
    parser.add_argument(
        "--days",
        type=int,
        default=2,
        help="UTC days read: Cassandra day partitions, the bronze and quarantine window (default 2)",
    )
    parser.add_argument("--top", type=int, default=5, help="top countries in top_cities (default 5)")
    parser.add_argument(
        "--min-users", type=int, default=20, help="country_age_deviation: smallest country shown (default 20)"
    )
    parser.add_argument("--versions-ago", type=int, default=5, help="time travel: versions back (default 5)")
    parser.add_argument(
        "--as-of-hours", type=float, default=24.0, help="time travel: hours back (default 24)"
    )
    parser.add_argument("--now", type=_aware, default=dt.datetime.now(dt.UTC), help=argparse.SUPPRESS)
    parser.add_argument("--delta-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        parser.error(f"--stores: unknown {unknown}; choose from {list(STORES)}")
    args.stores = stores
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.delta_json:
        from analytics import spark_job  # noqa: PLC0415 - pyspark only for the Delta half

        return spark_job.delta_main(args)

    settings = common_settings.load()
    src = Sources(
        now=args.now,
        days=args.days,
        top=args.top,
        min_users=args.min_users,
        versions_ago=args.versions_ago,
        as_of_hours=args.as_of_hours,
    )
    outcomes: list[Outcome] = []
    if "cassandra" in args.stores:
        outcomes += _run_cassandra(settings, src, args.only)
    if "delta" in args.stores and selected(args.only, "delta"):
        outcomes += _run_delta_subprocess(args.only, src)
    paths = report.write(
        args.out,
        BY_NAME,
        outcomes,
        generated=src.now,
        sources={
            "cassandra": settings.cassandra.keyspace,
            "delta": str(job_settings.from_settings(settings).lake_dir),
        },
        raw=outcomes_to_json(outcomes),
    )
    for path in paths:
        print(f"wrote {path}")
    failed = [o for o in outcomes if o.error]
    for o in failed:
        print(f"FAILED {o.name}: {o.error}", file=sys.stderr)
    return 1 if failed else 0
