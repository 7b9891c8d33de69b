"""The Kafka side of the access-matrix check: every ACL that can touch the namespace is compared.

Not only the two application principals: User:*, a stray user, a DENY, a host restriction, the
wildcard topic `*` and a matching prefix all count. ACLs on other topics and groups do not.
"""

from __future__ import annotations

from ops import access_matrix
from ops.kafka_admin import Grant

ENV = {"KAFKA_TOPIC": "rua_topic", "KAFKA_JOB_GROUP_PREFIX": "rua-job", "KAFKA_PRODUCER_USER": "prod"}
MATRIX = [
    Grant("User:prod", "TOPIC", "rua_topic", "LITERAL", "WRITE", "ALLOW"),
    Grant("User:prod", "TOPIC", "rua_topic", "LITERAL", "DESCRIBE", "ALLOW"),
    Grant("User:spark_job", "TOPIC", "rua_topic", "LITERAL", "READ", "ALLOW"),
    Grant("User:spark_job", "TOPIC", "rua_topic", "LITERAL", "DESCRIBE", "ALLOW"),
    Grant("User:spark_job", "GROUP", "rua-job", "PREFIXED", "READ", "ALLOW"),
]
ELSEWHERE = [  # other namespaces' ACLs (the demo's topic, a private test topic, another group)
    Grant("User:prod", "TOPIC", "random_user_data", "LITERAL", "WRITE", "ALLOW"),
    Grant("User:*", "TOPIC", "rua_topic_private", "LITERAL", "READ", "ALLOW"),
    Grant("User:*", "TOPIC", "rua_topic_", "PREFIXED", "READ", "ALLOW"),
    Grant("User:x", "GROUP", "other-group", "PREFIXED", "READ", "ALLOW"),
    Grant("User:x", "TRANSACTIONAL_ID", "rua_topic", "LITERAL", "WRITE", "ALLOW"),
]


def test_exactly_the_matrix_passes_whatever_lies_elsewhere() -> None:
    assert access_matrix.kafka_acl_drift(ENV, MATRIX + ELSEWHERE) == []


def test_every_other_acl_on_the_namespace_fails_the_check() -> None:
    stray = [
        Grant("User:*", "TOPIC", "rua_topic", "LITERAL", "READ", "ALLOW"),
        Grant("User:mallory", "TOPIC", "rua_topic", "LITERAL", "WRITE", "ALLOW"),
        Grant("User:mallory", "TOPIC", "*", "LITERAL", "READ", "ALLOW"),
        Grant("User:mallory", "TOPIC", "rua_", "PREFIXED", "DESCRIBE", "ALLOW"),
        Grant("User:prod", "TOPIC", "rua_topic", "LITERAL", "READ", "ALLOW"),
        Grant("User:prod", "TOPIC", "rua_topic", "LITERAL", "WRITE", "DENY"),
        Grant("User:prod", "TOPIC", "rua_topic", "LITERAL", "WRITE", "ALLOW", "10.0.0.9"),
        Grant("User:mallory", "GROUP", "rua-job-1", "LITERAL", "READ", "ALLOW"),
        Grant("User:mallory", "GROUP", "rua", "PREFIXED", "READ", "ALLOW"),
        Grant("User:*", "CLUSTER", "kafka-cluster", "LITERAL", "ALTER", "ALLOW"),
    ]
    assert access_matrix.kafka_acl_drift(ENV, MATRIX + ELSEWHERE + stray) == [
        "extra: ALLOW User:* ALTER on CLUSTER:kafka-cluster (LITERAL) from host *",
        "extra: ALLOW User:* READ on TOPIC:rua_topic (LITERAL) from host *",
        "extra: ALLOW User:mallory READ on GROUP:rua (PREFIXED) from host *",
        "extra: ALLOW User:mallory READ on GROUP:rua-job-1 (LITERAL) from host *",
        "extra: ALLOW User:mallory READ on TOPIC:* (LITERAL) from host *",
        "extra: ALLOW User:mallory DESCRIBE on TOPIC:rua_ (PREFIXED) from host *",
        "extra: ALLOW User:mallory WRITE on TOPIC:rua_topic (LITERAL) from host *",
        "extra: ALLOW User:prod READ on TOPIC:rua_topic (LITERAL) from host *",
        "extra: ALLOW User:prod WRITE on TOPIC:rua_topic (LITERAL) from host 10.0.0.9",
        "extra: DENY User:prod WRITE on TOPIC:rua_topic (LITERAL) from host *",
    ]


def test_a_missing_matrix_row_fails_the_check() -> None:
    assert access_matrix.kafka_acl_drift(ENV, MATRIX[1:]) == [
        "missing: ALLOW User:prod WRITE on TOPIC:rua_topic (LITERAL) from host *"
    ]
