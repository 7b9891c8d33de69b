"""The Kafka access-matrix check against the running broker: any ACL beyond the matrix fails it.

The test namespace must hold exactly the matrix. Then a private topic gets the matrix's topic
ACLs plus real stray ones (User:*, a user outside the matrix, a prefix matching the topic, a
DENY): the check names each of them. Everything created is removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

from common.settings import Settings
from ops import access_matrix, kafka_admin


def _acl(principal: str, name: str, pattern: str, operation: str, permission: str = "ALLOW") -> ACL:
    return ACL(
        principal=principal,
        host="*",
        operation=ACLOperation[operation],
        permission_type=ACLPermissionType[permission],
        resource_pattern=ResourcePattern(ResourceType.TOPIC, name, ACLResourcePatternType[pattern]),
    )


def _prefix(topic: str) -> str:
    """The PREFIXED resource the test grants: it matches the private topic and nothing else."""
    return topic[:-3]


def test_the_test_namespace_holds_exactly_the_matrix(stack: Settings) -> None:
    assert access_matrix.kafka_acl_drift(stack.env, kafka_admin.real_grants(stack.kafka)) == []


@pytest.fixture
def private_topic(stack: Settings) -> Iterator[tuple[KafkaAdminClient, str]]:
    """A private topic with the matrix's topic ACLs; the topic and every ACL on its name go afterwards."""
    k = stack.kafka
    name = f"rua_acl_test_{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(**kafka_admin.client_config(k, k.admin, 15_000))
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        producer, job = kafka_admin.principal(k.producer), kafka_admin.principal(k.job)
        result = admin.create_acls(
            [
                _acl(producer, name, "LITERAL", "WRITE"),
                _acl(producer, name, "LITERAL", "DESCRIBE"),
                _acl(job, name, "LITERAL", "READ"),
                _acl(job, name, "LITERAL", "DESCRIBE"),
            ]
        )
        assert result["failed"] == []
        yield admin, name
    finally:
        for resource, pattern in ((name, "LITERAL"), (_prefix(name), "PREFIXED")):
            filter_ = ResourcePatternFilter(ResourceType.TOPIC, resource, ACLResourcePatternType[pattern])
            for _, _, error in admin.delete_acls(
                [ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY, filter_)]
            ):
                assert error.errno == 0, f"cannot delete the test's ACLs on {resource}: {error.__name__}"
        admin.delete_topics([name])
        admin.close()


def test_stray_acls_on_the_topic_fail_the_check(
    stack: Settings, private_topic: tuple[KafkaAdminClient, str]
) -> None:
    admin, name = private_topic
    env = {**stack.env, "KAFKA_TOPIC": name}
    assert access_matrix.kafka_acl_drift(env, kafka_admin.real_grants(stack.kafka)) == []

    stray = f"User:stray_{uuid.uuid4().hex[:6]}"
    producer = kafka_admin.principal(stack.kafka.producer)
    result = admin.create_acls(
        [
            _acl("User:*", name, "LITERAL", "READ"),
            _acl(stray, name, "LITERAL", "WRITE"),
            _acl(stray, _prefix(name), "PREFIXED", "DESCRIBE"),
            _acl(producer, name, "LITERAL", "READ", "DENY"),
        ]
    )
    assert result["failed"] == []
    assert sorted(access_matrix.kafka_acl_drift(env, kafka_admin.real_grants(stack.kafka))) == [
        f"extra: ALLOW User:* READ on TOPIC:{name} (LITERAL) from host *",
        f"extra: ALLOW {stray} DESCRIBE on TOPIC:{_prefix(name)} (PREFIXED) from host *",
        f"extra: ALLOW {stray} WRITE on TOPIC:{name} (LITERAL) from host *",
        f"extra: DENY {producer} READ on TOPIC:{name} (LITERAL) from host *",
    ]
    # The namespace of the other tests is untouched by these ACLs.
    assert access_matrix.kafka_acl_drift(stack.env, kafka_admin.real_grants(stack.kafka)) == []
