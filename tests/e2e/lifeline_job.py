"""A tiny driver for tests/e2e/test_lifeline.py, submitted by scripts/spark-submit.sh.

It behaves like the streaming job when its JVM goes away: the main thread blocks in a py4j
call (as in `query.awaitTermination()`) and a non-daemon worker keeps calling the JVM and
retrying on errors (as the sink lanes do), so without a lifeline the Python process outlives
the JVM, first reparented to init, then stuck in interpreter shutdown waiting for the worker.

    scripts/spark-submit.sh [--driver-memory 512m] tests/e2e/lifeline_job.py \
        [--no-lifeline | --watcher-only] [--oom]

Prints `ready PYTHON_PID JVM_PID` once the session is up (and the lifeline installed). With
--watcher-only the lifeline has no parent death signal, only its thread. With
--oom the main thread then asks the JVM for a 1.6 GB array, a heap OutOfMemoryError.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from pyspark.sql import SparkSession

from jobs import lifeline


def worker(spark: SparkSession) -> None:
    while True:
        with contextlib.suppress(Exception):  # a sink lane retries on any error
            spark.sparkContext._jvm.java.lang.System.currentTimeMillis()  # type: ignore[union-attr]
        time.sleep(0.5)


def main() -> int:
    spark = SparkSession.builder.appName("lifeline-test").getOrCreate()
    if "--no-lifeline" not in sys.argv[1:]:
        lifeline.install(spark, death_signal="--watcher-only" not in sys.argv[1:])
    threading.Thread(target=worker, args=(spark,), name="lane", daemon=False).start()
    print(f"ready {os.getpid()} {os.getppid()}", flush=True)
    jvm = spark.sparkContext._jvm
    try:
        if "--oom" in sys.argv[1:]:
            jvm.java.util.ArrayList(400_000_000)  # type: ignore[union-attr]
            print("main: the JVM survived its OutOfMemoryError", flush=True)
        # blocked in the JVM, as awaitTermination is
        jvm.java.lang.Thread.sleep(3_600_000)  # type: ignore[union-attr]
    except Exception as exc:
        print(f"main: py4j call failed: {type(exc).__name__}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
