"""A minimal valid environment for common.settings: every account and the numeric values."""

from __future__ import annotations

ACCOUNTS = (
    "KAFKA_ADMIN",
    "KAFKA_PRODUCER",
    "KAFKA_JOB",
    "CASSANDRA_ADMIN",
    "CASSANDRA_WRITER",
    "CASSANDRA_READER",
    "MONGO_ADMIN",
    "MONGO_WRITER",
    "MONGO_READER",
)


def minimal_env(**overrides: str) -> dict[str, str]:
    env = {
        "KAFKA_TOPIC_PARTITIONS": "3",
        "KAFKA_TOPIC_REPLICATION": "1",
        "KAFKA_RETENTION_MS": "604800000",
        "CASSANDRA_PORT": "9042",
        "CASSANDRA_REPLICATION": "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        "MONGO_PORT": "27017",
        "PSEUDONYM_KEY": "ab" * 32,
        "PSEUDONYM_KEY_VERSION": "1",
    }
    for prefix in ACCOUNTS:
        env[f"{prefix}_USER"], env[f"{prefix}_PASSWORD"] = prefix.lower(), "secret-" + prefix
    env.update(overrides)
    return env
