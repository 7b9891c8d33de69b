"""The hang check's view of Spark (jobs.io.session.jobs_running) on a real session: a write
whose tasks run is busy; one that waits in client code on the driver runs no job."""

from __future__ import annotations

import threading
import time

from pyspark.sql import SparkSession

from jobs.io import retry
from jobs.io.session import jobs_running


def test_a_running_spark_job_is_seen_and_a_driver_side_wait_is_not(spark: SparkSession) -> None:
    assert not jobs_running(spark)
    seen: list[bool] = []
    started = threading.Event()

    def slow(rows: object) -> None:  # a task that runs for a while, like a sink's write
        time.sleep(3)

    def write() -> None:
        started.set()
        spark.sparkContext.parallelize(range(2), 2).foreachPartition(slow)

    writer = threading.Thread(target=write)
    writer.start()
    assert started.wait(10)
    deadline = time.monotonic() + 10
    while writer.is_alive() and time.monotonic() < deadline:
        seen.append(jobs_running(spark))
        time.sleep(0.2)
    writer.join()
    assert True in seen, "the running job was never seen"
    assert not jobs_running(spark)


def test_a_hung_client_call_on_the_driver_is_reported_by_the_real_busy_check(spark: SparkSession) -> None:
    reported = threading.Event()
    stalled: list[str] = []

    def on_stall(name: str, seconds: float) -> None:
        stalled.append(name)
        reported.set()

    hang = retry.HangCheck(1.0, busy=lambda: jobs_running(spark), servers_up=lambda: True, interval=0.2)
    # Waits on the driver, no job (like the connector's schema refresh that never returns).
    retry.with_retries(
        "cassandra", lambda: reported.wait(30), stall_timeout=600, on_stall=on_stall, hang=hang
    )
    assert stalled == ["cassandra"]
