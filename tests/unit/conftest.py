"""One local SparkSession for the whole unit tier: small, UTC, no UI, no jars."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

JAVA17 = "/usr/lib/jvm/java-17-openjdk-amd64"


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    # Java 17 explicitly (another JDK on the machine is not supported by Spark 3.5);
    # the Python side in UTC too, so collected timestamps read the same on every host.
    if os.path.isdir(JAVA17):
        os.environ["JAVA_HOME"] = JAVA17
    os.environ["TZ"] = "UTC"
    time.tzset()
    session = (
        SparkSession.builder.master("local[2]")
        .appName("unit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC -Xss4m")
        .config("spark.sql.adaptive.enabled", "false")
        # Tiny data: compiling whole-stage Java code costs seconds per query and saves nothing.
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
