"""What a new driver JVM costs before it is warm: the job's two processors, batch after batch.

A restart (a crash, a deploy, `make demo`) starts a JVM that compiles everything again: Spark's
generated code (Janino), then HotSpot's JIT of it. This runs the serving and the lake
processors of jobs/pipeline.py on `--batches` successive batches of `--users` generated users
each (the producer's offline generator, Kafka-shaped rows as bench/stages.py makes them), in
one JVM, and records each batch's wall time and the driver JVM's CPU seconds (`/proc`), so the
cold batches and the steady state are read side by side. Run through the job's own launcher:

    scripts/spark-submit.sh bench/warmup.py [--users 5000] [--batches 8] [--label warmup]
    SPARK_SUBMIT_OPTS="-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m" \\
        scripts/spark-submit.sh bench/warmup.py --label warmup_c1     # the JIT's C1 only

Results: bench/results/<label>.json (with the JVM options of the run and the speed gauge).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyspark.sql import SparkSession  # noqa: E402

from bench.harness import TICKS, cpu_ticks, generator_only, say, write_result  # noqa: E402
from bench.stages import bench_session, kafka_rows  # noqa: E402
from common.job_settings import JobSettings  # noqa: E402
from jobs import pipeline  # noqa: E402
from jobs.core.schema import BRONZE_SCHEMA  # noqa: E402

PER_MESSAGE = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000, help="users per batch")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--label", default="warmup", help="results file name")
    args = parser.parse_args()
    gauge = generator_only(5, 500)
    say("warmup", f"speed gauge {gauge:,.0f} users/s")
    with bench_session("warmup", "4193") as (job, spark):
        batches = run(job, spark, args.users, args.batches)
    write_result(
        args.label,
        {
            "users_per_batch": args.users,
            "users_per_message": PER_MESSAGE,
            "jvm_options": os.environ.get("SPARK_SUBMIT_OPTS", ""),
            "speed_gauge_users_s": round(gauge),
            "batches": batches,
        },
    )
    return 0


def run(job: JobSettings, spark: SparkSession, users: int, count: int) -> list[dict[str, float]]:
    """Both processors on `count` batches of `users` new users each: wall and JVM CPU seconds."""
    jvm = Path(f"/proc/{spark._jvm.java.lang.ProcessHandle.current().pid()}/stat")  # type: ignore[union-attr]

    def cpu_s() -> float:
        return cpu_ticks(jvm.read_text()) / TICKS

    serving = pipeline.ServingProcessor(spark, job, "bench-warmup")
    lake = pipeline.LakeProcessor(spark, job, "bench-warmup")
    pseudonym = job.common.pseudonym
    messages = users // PER_MESSAGE
    batches: list[dict[str, float]] = []
    for b in range(count):
        # Offsets go on from batch to batch, as the topic's do: every record is a new one.
        rows = kafka_rows(users, PER_MESSAGE, f"warmup-{b}", first_seq=b * messages)
        raw = spark.createDataFrame(rows, BRONZE_SCHEMA).persist()
        raw.count()
        c0, t0 = cpu_s(), time.monotonic()
        serving.process(pipeline.serving_rows(raw, pseudonym.key, pseudonym.key_version), b)
        c1, t1 = cpu_s(), time.monotonic()
        lake.process(raw, b)
        c2, t2 = cpu_s(), time.monotonic()
        raw.unpersist()
        batch = {
            "batch": b,
            "serving_s": round(t1 - t0, 2),
            "serving_cpu_s": round(c1 - c0, 2),
            "lake_s": round(t2 - t1, 2),
            "lake_cpu_s": round(c2 - c1, 2),
        }
        batches.append(batch)
        say("warmup", json.dumps(batch))
    return batches


if __name__ == "__main__":
    raise SystemExit(main())
