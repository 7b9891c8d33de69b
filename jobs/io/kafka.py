"""Kafka as the jobs' source: the topic read as the job's account (SASL, TLS)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from common.job_settings import JobSettings, QuerySettings
from common.settings import Account, Settings

KAFKA_FETCH_MAX_WAIT_MS = 20


def read_kafka(
    spark: SparkSession, job: JobSettings, query: QuerySettings, starting_offsets: str | None = None
) -> DataFrame:
    """The raw Kafka records of the topic for one query, as the job's user (SASL/SCRAM, TLS
    with SASL_SSL), with headers; at most `query.max_offsets_per_trigger` records a batch."""
    k = job.common.kafka
    return (
        spark.readStream.format("kafka")
        .options(**kafka_options(job.common, k.job))
        .option("subscribe", k.topic)
        .option("groupIdPrefix", k.job_group_prefix)
        .option("includeHeaders", "true")
        .option("startingOffsets", starting_offsets or job.starting_offsets)
        .option("failOnDataLoss", str(job.fail_on_data_loss).lower())
        .option("maxOffsetsPerTrigger", str(query.max_offsets_per_trigger))
        # Spark reads offset ranges it knows are there: a fetch never needs to wait for data.
        # At the default (500 ms) the first read of a batch waited that long (measured).
        .option("kafka.fetch.max.wait.ms", str(KAFKA_FETCH_MAX_WAIT_MS))
        .load()
    )


def kafka_options(settings: Settings, account: Account) -> dict[str, str]:
    """Spark Kafka source options of one account: SASL, and TLS with the CA under SASL_SSL."""
    return {f"kafka.{key}": value for key, value in settings.kafka.jvm_config(account).items()}
