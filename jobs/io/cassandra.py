"""Cassandra through the Spark connector: its settings and the idempotent upserts.

Plain INSERTs (upserts) on deterministic primary keys; no counters: a rerun changes nothing.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from common.job_settings import JobSettings
from common.settings import Account, Settings, SettingsError

CASSANDRA_FORMAT = "org.apache.spark.sql.cassandra"


def cassandra_conf(settings: Settings, account: Account) -> dict[str, str]:
    """The Cassandra connector's connection settings (session conf, or options of one read/write)."""
    c = settings.cassandra
    conf = {
        "spark.cassandra.connection.host": ",".join(c.hosts),
        "spark.cassandra.connection.port": str(c.port),
        "spark.cassandra.connection.localDC": c.local_dc,
        "spark.cassandra.auth.username": account.user,
        "spark.cassandra.auth.password": account.password.get_secret_value(),
    }
    if c.ssl:
        if c.jvm_truststore is None:
            raise SettingsError("CASSANDRA_SSL=true needs JVM_TRUSTSTORE for the Spark connector")
        conf.update(
            {
                "spark.cassandra.connection.ssl.enabled": "true",
                "spark.cassandra.connection.ssl.trustStore.path": str(c.jvm_truststore.path),
                "spark.cassandra.connection.ssl.trustStore.password": c.jvm_truststore.password(),
                "spark.cassandra.connection.ssl.trustStore.type": "PKCS12",
            }
        )
    return conf


def write_cassandra(df: DataFrame, job: JobSettings, table: str) -> None:
    """Upsert rows into a table of the keyspace (INSERTs on the table's primary key)."""
    (
        df.write.format(CASSANDRA_FORMAT)
        .mode("append")
        .option("keyspace", job.common.cassandra.keyspace)
        .option("table", table)
        .save()
    )
