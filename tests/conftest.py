"""Fixtures shared by every tier.

The stack is started once for the whole run (`scripts/stack.sh up`, idempotent) by
the session fixture `stack`; a server that cannot start fails the tests that need
it, it never turns them into skips.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from common import envfile
from common import settings as settings_module
from common.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# Tests run against the same local servers as the demo, but in their own namespace:
# their topic, keyspace and database, so `make test` never clobbers demo data (and the
# demo never disturbs a test's exact assertions). Set up by the same code as the real ones.
os.environ.setdefault("KAFKA_TOPIC", "random_user_data_test")
os.environ.setdefault("CASSANDRA_KEYSPACE", "random_user_keyspace_test")
os.environ.setdefault("MONGO_DATABASE", "randomUserDB_test")
# The test stack always offers TLS to clients (tests/integration/test_tls.py connects over it);
# `scripts/stack.sh up` restarts a server that runs without. Clients stay on plaintext by default.
os.environ["STACK_TLS"] = "true"
# The test stack runs Prometheus and the JMX exporter agents (tests/integration/test_prometheus.py
# reads them through its API), scraping every 10 s so that the first samples come soon (5 s cost
# Cassandra and Kafka a JMX read every 5 s through the whole run).
os.environ["PROMETHEUS_ENABLED"] = "true"
os.environ.setdefault("PROMETHEUS_SCRAPE_INTERVAL_S", "10")
# Every job the tests start with scripts/spark-submit.sh (Spark's launcher reads SPARK_SUBMIT_OPTS)
# compiles with C1 only; the in-process session below does not. Test runs are
# short and on small data: C2 spends a quarter of their CPU compiling code they leave before it
# pays off (docs/PERFORMANCE.md; measured 28 % less CPU for an end-to-end test). The code run
# is the same; a long-running job keeps C2 (nothing sets this outside the tests). C1 alone
# would also shrink the code cache to 48 MiB, which Spark's generated code fills ("Out of
# space in CodeCache for method handle intrinsic", seen as an InternalError `no such method:
# MethodHandle.linkToVirtual` killing a task): it keeps the tiered default, 240 MiB.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m")
# Real API responses, inside the repository (tests/fixtures/README.md says where each came from).
FIXTURES = ROOT / "tests" / "fixtures" / "randomuser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test belongs to a tier, given by its folder.
    for item in items:
        for tier in ("unit", "integration", "e2e"):
            if f"tests/{tier}/" in str(item.path).replace(os.sep, "/"):
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"API fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def settings() -> Settings:
    return settings_module.load()


def run_stack(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run scripts/stack.sh; a failure raises with the script's own explanation."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "stack.sh"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/stack.sh {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def java17_home() -> Path:
    """The JDK 17 the scripts use (scripts/lib.sh): JAVA_HOME_17 (environment or `.env`), else
    JAVA_HOME_DEFAULT of conf/versions.env. Spark 3.5 and Cassandra 5 need 17, not a newer one."""
    home = envfile.load(ROOT).get("JAVA_HOME_17") or envfile.parse(
        (ROOT / "conf" / "versions.env").read_text(encoding="utf-8")
    ).get("JAVA_HOME_DEFAULT", "")
    release = Path(home) / "release"
    version = release.read_text(encoding="utf-8") if home and release.is_file() else ""
    if 'JAVA_VERSION="17.' not in version:
        raise RuntimeError(f"Java 17 not found at {home or '(unset)'} (set JAVA_HOME_17 to a JDK 17)")
    return Path(home)


def _packages() -> list[str]:
    """The jar coordinates pinned in conf/spark-defaults.conf (the jobs' whole class path)."""
    for line in (ROOT / "conf" / "spark-defaults.conf").read_text().splitlines():
        if line.startswith("spark.jars.packages"):
            return line.split(None, 1)[1].split(",")
    raise AssertionError("spark.jars.packages not found in conf/spark-defaults.conf")


def _cached_jars(ivy: Path) -> list[Path]:
    """The jobs' jars from the project's ivy cache (spark-submit resolved them), or [] to resolve.

    All pinned top-level jars must be there, and one version of each artifact: after a
    version change two would lie there, and no test must run on a mix (jars Spark already
    has lose to Spark's own).
    """
    jars_dir = ivy / "jars"
    pinned = [jars_dir / f"{g}_{a}-{v}.jar" for g, a, v in (p.split(":") for p in _packages())]
    if not all(j.is_file() for j in pinned):
        return []
    by_artifact: dict[str, list[Path]] = {}
    for jar in sorted(jars_dir.glob("*.jar")):
        match = re.match(r"^(.+?)-\d.*\.jar$", jar.name)
        by_artifact.setdefault(match.group(1) if match else jar.name, []).append(jar)
    if any(len(found) > 1 for found in by_artifact.values()):
        return []
    return [found[0] for found in by_artifact.values()]


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[SparkSession]:
    """One local SparkSession for every in-process Spark test: small, UTC, no UI, with Delta.

    One per run, because a JVM holds one SparkContext: a second fixture's getOrCreate would
    silently get the first one's configuration.
    """
    # Java 17 explicitly (another JDK on the machine is not supported by Spark 3.5);
    # the Python side in UTC too, so collected timestamps read the same on every host.
    os.environ["JAVA_HOME"] = str(java17_home())
    os.environ["TZ"] = "UTC"
    time.tzset()
    ivy = settings.stack.cache_dir / "ivy"
    builder = SparkSession.builder.master("local[2]").appName("tests")
    jars = _cached_jars(ivy)
    if jars:  # no resolution round-trip to Maven Central
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    else:  # first run on this machine: resolve the pinned coordinates into the project's cache
        builder = (
            builder.config("spark.jars.packages", ",".join(_packages()))
            .config("spark.jars.ivy", str(ivy))
            .config("spark.jars.ivySettings", str(ROOT / "conf" / "ivysettings.xml"))
        )
    # This session lives for the whole run, long enough for C2 to pay off: not the jobs' C1.
    submit_opts = os.environ.pop("SPARK_SUBMIT_OPTS", None)
    session = (
        builder.config(
            "spark.driver.extraJavaOptions", f"-Divy.default.ivy.user.dir={ivy} -Duser.timezone=UTC -Xss4m"
        )
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.adaptive.enabled", "false")
        # VACUUM lists files with this many tasks (default 10,000: minutes on 2 cores).
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", "4")
        # Delta rebuilds a table's state with this many tasks (default 50): small tables, 2 cores.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # Tiny data: compiling whole-stage Java code costs seconds per query and saves nothing.
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    if submit_opts is not None:
        os.environ["SPARK_SUBMIT_OPTS"] = submit_opts
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The running local stack (Kafka, Cassandra, FerretDB, Prometheus), started once per run."""
    run_stack("up", timeout=1800)
    yield settings
