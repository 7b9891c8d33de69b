"""Where the streaming job's driver JVM spends its CPU: a JFR profile of the running job.

    .venv/bin/python -m bench.driver_profile [--seconds 60] [--pid PID] [--label profile]
    .venv/bin/python -m bench.driver_profile --recording FILE.jfr --label L   (summarise a recording)
    .venv/bin/python -m bench.driver_profile --pid $(pgrep -f CassandraDaemon) --containing BatchStatement

Attaches Java Flight Recorder (JDK 17's own, no agent) to the running job
(scripts/spark-submit.sh jobs/stream_users.py: `make demo`, or a phase of `make bench`),
samples every thread's Java stack for --seconds, and sorts the samples into what the job
does: code generation and compilation, planning, the JSON parse, each sink's writer,
(de)serialization of tasks, and so on (CATEGORIES, the first that matches a sample's stack
wins). Prints the table and writes bench/results/LABEL.json, with the recording beside it
under .stack/ for `jfr` or JDK Mission Control. JFR's sampling costs a few per cent of a
core; a figure taken while it records is not a benchmark figure.

(Not `bench/profile.py`: a script run by spark-submit has bench/ first on its path, and a
`profile` module there hides the standard library's, which PySpark's profiler imports.)

This is how the next bottleneck is named by measurement (docs/PERFORMANCE.md): at
10 users / 10 s it found a third of the driver's CPU in code generation.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import say, write_result  # noqa: E402

# (category, a substring of a frame): the first category with a frame of the sample wins,
# so the specific ones (compilation inside a task) come before the general (a task).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("code compilation (Janino)", "org.codehaus.janino"),
    ("code generation (source)", "expressions.codegen.CodeGenerator"),
    ("code generation (source)", "expressions.codegen.Block"),
    ("code generation (source)", "expressions.codegen.CodeFormatter"),
    ("code generation (source)", "expressions.Expression.genCode"),
    ("code generation (source)", "WholeStageCodegenExec.doCodeGen"),
    ("Cassandra writer", "com.datastax.spark.connector.datasource.CassandraDriverDataWriter"),
    ("Mongo writer", "com.mongodb.spark.sql.connector.write.MongoDataWriter"),
    ("Delta / Parquet writer", "org.apache.spark.sql.execution.datasources.FileFormatWriter"),
    ("JSON parse", "org.apache.spark.sql.catalyst.json.JacksonParser"),
    ("cache or checkpoint fill", "org.apache.spark.storage.BlockManager.doPutIterator"),
    ("shuffle map task (parse, rules, enrichment)", "org.apache.spark.scheduler.ShuffleMapTask"),
    ("result task", "org.apache.spark.scheduler.ResultTask"),
    ("Delta log and snapshots", "org.apache.spark.sql.delta"),
    ("optimizer and analyzer", "org.apache.spark.sql.catalyst.rules.RuleExecutor"),
    ("cache lookup (plan comparison)", "org.apache.spark.sql.execution.CacheManager"),
    ("query planning", "org.apache.spark.sql.execution.QueryExecution"),
    ("task (de)serialization", "java.io.ObjectInputStream"),
    ("task (de)serialization", "java.io.ObjectOutputStream"),
    ("Kafka client", "org.apache.kafka"),
    ("Cassandra driver (I/O)", "com.datastax.oss.driver"),
    ("Mongo driver (I/O)", "com.mongodb"),
    ("Python bridge (Py4J)", "py4j."),
    ("Spark listeners and UI state", "org.apache.spark.status"),
    ("Spark listeners and UI state", "org.apache.spark.scheduler.AsyncEventQueue"),
)
_FRAME = re.compile(r"^\s+([\w.$<>]+)\(", re.M)


def categorise(printed: str, containing: tuple[str, ...] = (), top: int = 15) -> dict[str, Any]:
    """`jfr print --events jdk.ExecutionSample` output -> samples and share per category, the
    innermost frames that take the most samples (self time), and for each of `containing`
    the share of samples with a frame that contains it (inclusive time: any JVM, e.g. a server's).
    """
    counts: collections.Counter[str] = collections.Counter()
    innermost: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for event in printed.split("jdk.ExecutionSample")[1:]:
        frames = _FRAME.findall(event)
        if not frames:
            continue
        stack = "\n".join(frames)
        counts[next((name for name, part in CATEGORIES if part in stack), "other")] += 1
        innermost[frames[0]] += 1
        inclusive.update(part for part in containing if part in stack)
    total = sum(counts.values())

    def share(counter: collections.Counter[str], keys: Any) -> dict[str, float]:
        return {k: round(100 * counter[k] / total, 1) for k in keys} if total else {}

    result = {
        "samples": total,
        "share_pct": share(counts, [k for k, _ in counts.most_common()]),
        "top_self_pct": share(innermost, [k for k, _ in innermost.most_common(top)]),
    }
    if containing:
        result["containing_pct"] = share(inclusive, containing)
    return result


def driver_pid() -> int:
    """The one running streaming job's driver JVM."""
    found = subprocess.run(
        ["pgrep", "-f", "org.apache.spark.deploy.SparkSubmit.*jobs/stream_users.py"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if len(found) != 1:
        raise SystemExit(f"profile: expected one running streaming job, found {len(found)}: use --pid")
    return int(found[0])


def jdk_tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    if not home:
        raise SystemExit("profile: JAVA_HOME is not set (the JDK 17 the job runs on)")
    return str(Path(home) / "bin" / name)


def record(pid: int, seconds: int, label: str) -> Path:
    """A JFR recording of the JVM `pid` for `seconds`, under .stack/."""
    (ROOT / ".stack").mkdir(exist_ok=True)
    recording = Path(tempfile.mkdtemp(prefix="profile-", dir=ROOT / ".stack")) / f"{label}.jfr"
    start = [jdk_tool("jcmd"), str(pid), "JFR.start", "name=bench-profile", "settings=profile"]
    subprocess.run([*start, f"duration={seconds}s", f"filename={recording}"], check=True, capture_output=True)
    for waited in range(0, seconds + 30, 10):
        say("profile", f"recording the driver (pid {pid}): {waited:>3}/{seconds} s")
        time.sleep(10)
        if waited >= seconds and recording.exists() and recording.stat().st_size:
            return recording
    raise SystemExit(f"profile: JFR wrote no recording to {recording}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--pid", type=int, default=None, help="the driver JVM (default: the running job)")
    parser.add_argument("--label", default="profile", help="results file name (bench/results/LABEL.json)")
    parser.add_argument("--recording", type=Path, default=None, help="summarise this .jfr, record nothing")
    parser.add_argument(
        "--containing",
        action="append",
        default=[],
        help="also the share of samples with a frame containing this (repeatable; e.g. for a "
        "server's JVM, whose samples the job's categories leave in 'other')",
    )
    args = parser.parse_args()
    recording = args.recording or record(args.pid or driver_pid(), args.seconds, args.label)
    printed = subprocess.run(
        [jdk_tool("jfr"), "print", "--stack-depth", "256", "--events", "jdk.ExecutionSample", str(recording)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = categorise(printed, tuple(args.containing))
    for name, pct in result["share_pct"].items():
        say("profile", f"{pct:5.1f} %  {name}")
    for part, pct in result.get("containing_pct", {}).items():
        say("profile", f"{pct:5.1f} %  of the samples have a frame containing {part!r}")
    write_result(
        args.label,
        {"seconds": args.seconds, "recording": str(recording), **result},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
