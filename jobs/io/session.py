"""The Spark session of the jobs, with the connectors' settings, and the JVM's trust store."""

from __future__ import annotations

from pyspark.sql import SparkSession

from common.job_settings import JobSettings
from common.settings import JvmTruststore
from jobs.io.cassandra import cassandra_conf


def spark_session(job: JobSettings, app_name: str) -> SparkSession:
    """The job's session: connector settings from the typed settings (redacted in the UI)."""
    s = job.common
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.port", str(job.ui_port))
        .config("spark.cassandra.output.consistency.level", job.cassandra_write_consistency)
        .config("spark.mongodb.write.connection.uri", s.mongo.uri(s.mongo.writer, jvm=True))
        .config("spark.mongodb.read.connection.uri", s.mongo.uri(s.mongo.writer, jvm=True))
    )
    for key, value in cassandra_conf(s, s.cassandra.writer).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if s.mongo.tls and s.mongo.jvm_truststore is not None:
        install_jvm_trust(spark, s.mongo.jvm_truststore)
    return spark


def install_jvm_trust(spark: SparkSession, truststore: JvmTruststore) -> None:
    """Make the trust store the JVM's default TLS context (MONGO_TLS).

    The MongoDB Java driver under the Spark connector has no CA-file option: it uses the JVM's
    default SSLContext. Set here, in the running driver JVM, it needs no password on a command
    line and works even when something (Ivy) already initialised the default. Local mode runs
    the executors in this JVM; on a cluster give the executors
    -Djavax.net.ssl.trustStore=... in spark.executor.extraJavaOptions (docs/STACK.md).
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    password = truststore.password()
    # A char[] built inside the JVM (py4j turns every returned String into a Python str).
    chars = jvm.java.nio.CharBuffer.allocate(len(password)).put(password).array()
    keystore = jvm.java.security.KeyStore.getInstance("PKCS12")
    stream = jvm.java.io.FileInputStream(str(truststore.path))
    try:
        keystore.load(stream, chars)
    finally:
        stream.close()
    factory = jvm.javax.net.ssl.TrustManagerFactory.getInstance(
        jvm.javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm()
    )
    factory.init(keystore)
    context = jvm.javax.net.ssl.SSLContext.getInstance("TLS")
    context.init(None, factory.getTrustManagers(), None)
    jvm.javax.net.ssl.SSLContext.setDefault(context)


def jobs_running(spark: SparkSession) -> bool:
    """A Spark job of this application is running (what a sink write that works does)."""
    return bool(spark.sparkContext.statusTracker().getActiveJobsIds())
