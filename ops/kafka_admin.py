"""Kafka administration: readiness check, idempotent topic + ACL setup, and the real grants as data.

The broker denies everything without an ACL (allow.everyone.if.no.acl.found=false), so this module
is where the producer and the Spark job get exactly the rights they need and nothing more. Run it
after every start (`scripts/stack.sh up` does): it converges, never duplicates, and revokes grants
of the managed accounts on this topic, group prefix or the cluster that are not in the matrix
(docs/stack/kafka.md).

    python -m ops.kafka_admin check      # one authenticated metadata request as the admin
    python -m ops.kafka_admin setup      # topic (partitions, retention) and ACLs
    python -m ops.kafka_admin describe   # the topic and every ACL on the cluster
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from common.clients import kafka_addresses, kafka_config, refused
from common.settings import Account, KafkaSettings, SettingsError, load

log = logging.getLogger(__name__)

# Bounded waits: `check` is retried by scripts/lib.sh wait_until, so each attempt must be short.
CHECK_TIMEOUT_MS = 5_000
ADMIN_TIMEOUT_MS = 15_000


@dataclass(frozen=True, order=True)
class Grant:
    """One ACL entry in plain strings, comparable with a documented matrix."""

    principal: str  # e.g. "User:producer"
    resource_type: str  # TOPIC, GROUP, CLUSTER, ...
    resource_name: str
    pattern_type: str  # LITERAL or PREFIXED
    operation: str  # READ, WRITE, DESCRIBE, ...
    permission: str  # ALLOW or DENY
    host: str = "*"


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    replication: int
    retention_ms: int | None


def principal(account: Account) -> str:
    return f"User:{account.user}"


def desired_grants(k: KafkaSettings) -> list[Grant]:
    """The whole ACL matrix of the platform (super user aside).

    The idempotent producer needs no IDEMPOTENT_WRITE on the cluster: since Kafka 3.0 (KIP-679)
    WRITE on a topic implies it, and tests/integration/test_stack_kafka.py proves it on 4.1.
    """
    producer, job = principal(k.producer), principal(k.job)
    return sorted(
        [
            Grant(producer, "TOPIC", k.topic, "LITERAL", "WRITE", "ALLOW"),
            Grant(producer, "TOPIC", k.topic, "LITERAL", "DESCRIBE", "ALLOW"),
            Grant(job, "TOPIC", k.topic, "LITERAL", "READ", "ALLOW"),
            Grant(job, "TOPIC", k.topic, "LITERAL", "DESCRIBE", "ALLOW"),
            Grant(job, "GROUP", k.job_group_prefix, "PREFIXED", "READ", "ALLOW"),
        ]
    )


def client_config(k: KafkaSettings, account: Account, timeout_ms: int) -> dict[str, Any]:
    return kafka_config(
        k,
        account,
        client_id=f"ops-kafka-admin-{account.user}",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        reconnect_backoff_max_ms=1_000,
    )


@contextmanager
def admin_client(k: KafkaSettings, timeout_ms: int = ADMIN_TIMEOUT_MS) -> Iterator[KafkaAdminClient]:
    """An admin client authenticated as the Kafka admin account, always closed. Raises
    KafkaConnectionError at once when every bootstrap server refuses the connection."""
    if why := refused(kafka_addresses(k)):
        raise KafkaConnectionError(why)
    admin = KafkaAdminClient(**client_config(k, k.admin, timeout_ms))
    try:
        yield admin
    finally:
        admin.close()


def check(k: KafkaSettings) -> str:
    """A real authenticated metadata request; returns a one-line description of the cluster."""
    with admin_client(k, CHECK_TIMEOUT_MS) as admin:
        cluster = admin.describe_cluster()
    brokers = cluster.get("brokers", [])
    return f"cluster {cluster.get('cluster_id')} at {k.bootstrap_servers}: {len(brokers)} broker(s)"


def _to_grant(acl: ACL) -> Grant:
    pattern = acl.resource_pattern
    return Grant(
        principal=acl.principal,
        resource_type=ResourceType(pattern.resource_type).name,
        resource_name=pattern.resource_name,
        pattern_type=ACLResourcePatternType(pattern.pattern_type).name,
        operation=ACLOperation(acl.operation).name,
        permission=ACLPermissionType(acl.permission_type).name,
        host=acl.host,
    )


def _to_acl(grant: Grant) -> ACL:
    return ACL(
        principal=grant.principal,
        host=grant.host,
        operation=ACLOperation[grant.operation],
        permission_type=ACLPermissionType[grant.permission],
        resource_pattern=ResourcePattern(
            ResourceType[grant.resource_type],
            grant.resource_name,
            ACLResourcePatternType[grant.pattern_type],
        ),
    )


def _to_filter(grant: Grant) -> ACLFilter:
    return ACLFilter(
        principal=grant.principal,
        host=grant.host,
        operation=ACLOperation[grant.operation],
        permission_type=ACLPermissionType[grant.permission],
        resource_pattern=ResourcePatternFilter(
            ResourceType[grant.resource_type],
            grant.resource_name,
            ACLResourcePatternType[grant.pattern_type],
        ),
    )


def current_grants(admin: KafkaAdminClient) -> list[Grant]:
    """Every ACL the cluster holds, sorted (what the governance test compares with the docs)."""
    everything = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, _ = admin.describe_acls(everything)
    return sorted(_to_grant(acl) for acl in acls)


def real_grants(k: KafkaSettings) -> list[Grant]:
    """The cluster's ACLs, read as the admin."""
    with admin_client(k) as admin:
        return current_grants(admin)


def topic_state(admin: KafkaAdminClient, topic: str) -> TopicState | None:
    """Partitions, replication and retention of the topic; None when it does not exist."""
    if topic not in admin.list_topics():
        return None
    (described,) = admin.describe_topics([topic])
    partitions = described.get("partitions") or []
    replication = max((len(p.get("replica_nodes", [])) for p in partitions), default=0)
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    entry = configs.get("topic", {}).get(topic, {}).get("retention.ms") or {}
    raw = entry.get("value")
    return TopicState(topic, len(partitions), replication, int(raw) if raw is not None else None)


def ensure_topic(admin: KafkaAdminClient, k: KafkaSettings) -> list[str]:
    """Create the topic, or bring its retention in line; returns what changed."""
    changes: list[str] = []
    state = topic_state(admin, k.topic)
    if state is None:
        try:
            admin.create_topics(
                {
                    k.topic: {
                        "num_partitions": k.partitions,
                        "replication_factor": k.replication,
                        "configs": {"retention.ms": str(k.retention_ms)},
                    }
                },
                timeout_ms=ADMIN_TIMEOUT_MS,
                wait_for_metadata=True,
            )
            changes.append(
                f"created topic {k.topic} ({k.partitions} partitions, replication {k.replication}, "
                f"retention.ms {k.retention_ms})"
            )
        except TopicAlreadyExistsError:  # created concurrently: converge below
            log.info("topic %s appeared concurrently", k.topic)
        state = topic_state(admin, k.topic)
        if state is None:
            raise RuntimeError(f"topic {k.topic} still missing after creation")
    if state.retention_ms != k.retention_ms:
        result = admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, k.topic, {"retention.ms": str(k.retention_ms)})],
            incremental=True,
        )
        outcome = result.get("topic", {}).get(k.topic)
        if outcome != "OK":
            raise RuntimeError(f"cannot set retention.ms of {k.topic}: {outcome}")
        changes.append(f"retention.ms of {k.topic}: {state.retention_ms} -> {k.retention_ms}")
    # Partition count and replication are never changed behind the operator's back: more
    # partitions would move keys to other partitions (per-user ordering), fewer is impossible.
    if state.partitions != k.partitions:
        log.warning(
            "topic %s has %d partitions, KAFKA_TOPIC_PARTITIONS=%d: left as is (change it deliberately)",
            k.topic,
            state.partitions,
            k.partitions,
        )
    if state.replication != k.replication:
        log.warning(
            "topic %s has replication %d, KAFKA_TOPIC_REPLICATION=%d: left as is",
            k.topic,
            state.replication,
            k.replication,
        )
    return changes


def in_scope(k: KafkaSettings, grant: Grant) -> bool:
    """Whether a grant belongs to this setup: a managed account on this topic, the job's group
    prefix or the cluster. Grants on other topics (tests use their own, KAFKA_TOPIC=..._test,
    with the same accounts) belong to the setup run for that topic and are left alone."""
    if grant.principal not in {principal(k.producer), principal(k.job)}:
        return False
    return (
        (grant.resource_type == "TOPIC" and grant.resource_name == k.topic)
        or (grant.resource_type == "GROUP" and grant.resource_name.startswith(k.job_group_prefix))
        or grant.resource_type in {"CLUSTER", "TRANSACTIONAL_ID"}
    )


def scoped_grants(k: KafkaSettings, grants: list[Grant]) -> list[Grant]:
    """The grants `setup` for this topic is responsible for (compare with desired_grants)."""
    return sorted(g for g in grants if in_scope(k, g))


def ensure_acls(admin: KafkaAdminClient, k: KafkaSettings) -> list[str]:
    """Add the missing grants of the matrix; revoke any other grant in this setup's scope."""
    wanted = set(desired_grants(k))
    present = set(current_grants(admin))
    missing = sorted(wanted - present)
    extra = sorted(g for g in present - wanted if in_scope(k, g))
    changes: list[str] = []
    if missing:
        result = admin.create_acls([_to_acl(g) for g in missing])
        if result["failed"]:
            raise RuntimeError(f"cannot create ACLs: {result['failed']}")
        changes += [f"granted {_fmt(g)}" for g in missing]
    if extra:
        for _, _, error in admin.delete_acls([_to_filter(g) for g in extra]):
            if error.errno != 0:
                raise RuntimeError(f"cannot delete ACLs: {error.__name__}")
        changes += [f"revoked {_fmt(g)} (not in the matrix)" for g in extra]
    return changes


def ensure_users(admin: KafkaAdminClient, k: KafkaSettings) -> list[str]:
    """Create the producer and job SCRAM users when the cluster lacks them (an external cluster,
    or an account added after the local storage was formatted). Existing passwords are never
    overwritten: the broker cannot tell whether they match, and rotation is a deliberate act."""
    if not k.sasl_mechanism.startswith("SCRAM-"):
        return []
    mechanism = ScramMechanism[k.sasl_mechanism.replace("-", "_")]
    described = admin.describe_user_scram_credentials([k.producer.user, k.job.user])
    changes: list[str] = []
    for account in (k.producer, k.job):
        infos = (described.get(account.user) or {}).get("credential_infos") or []
        if any(info["mechanism"] == mechanism for info in infos):
            continue
        errors = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(account.user, mechanism, account.password.get_secret_value())]
        )
        if errors.get(account.user):
            raise RuntimeError(f"cannot create SCRAM user {account.user}: {errors[account.user]}")
        changes.append(f"created {k.sasl_mechanism} user {account.user}")
    return changes


def setup(k: KafkaSettings) -> list[str]:
    """Converge users, topic and ACLs; returns the changes made (empty when all was in place)."""
    with admin_client(k) as admin:
        return ensure_users(admin, k) + ensure_topic(admin, k) + ensure_acls(admin, k)


def _fmt(g: Grant) -> str:
    return (
        f"{g.permission} {g.principal} {g.operation} on {g.resource_type} "
        f"{g.resource_name!r} ({g.pattern_type}, host {g.host})"
    )


def describe(k: KafkaSettings) -> str:
    """Human-readable topic and ACL table."""
    with admin_client(k) as admin:
        state = topic_state(admin, k.topic)
        grants = current_grants(admin)
    lines = []
    if state is None:
        lines.append(f"topic {k.topic}: MISSING")
    else:
        lines.append(
            f"topic {state.name}: {state.partitions} partitions, replication {state.replication}, "
            f"retention.ms {state.retention_ms}"
        )
    lines.append(f"ACLs ({len(grants)}), super user User:{k.admin.user} aside:")
    header = ("principal", "resource", "name", "pattern", "operation", "permission", "host")
    rows = [header] + [
        (g.principal, g.resource_type, g.resource_name, g.pattern_type, g.operation, g.permission, g.host)
        for g in grants
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


class _ClientErrors(logging.Handler):
    """Keeps what kafka-python only logs: a failed bootstrap raises a bare timeout, and the
    real cause (refused connection, authentication failure) is in its log records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.auth_failure = ""
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        marker = message.rfind("SaslAuthenticationFailedError:")
        if marker >= 0 and not self.auth_failure:
            self.auth_failure = message[marker:].rstrip(")")
        elif (
            record.name == "kafka.net.manager"
            and "failed" in message
            and not message.startswith("Bootstrap failed")
        ):
            self.last = message

    def cause(self) -> str:
        if self.auth_failure:
            return self.auth_failure
        if "socket disconnected" in self.last:
            # The broker answers a failed SCRAM exchange and hangs up; the client often sees
            # only the hang-up.
            return f"{self.last}; the broker closed the connection: wrong user/password or mechanism?"
        return self.last


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.kafka_admin", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "setup", "describe"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  [kafka] %(message)s")
    # kafka-python logs every failed connection attempt; keep only the cause, on one line.
    client_errors = _ClientErrors()
    kafka_logger = logging.getLogger("kafka")
    kafka_logger.setLevel(logging.WARNING)
    kafka_logger.propagate = False
    kafka_logger.addHandler(client_errors)
    try:
        k = load().kafka
        if args.command == "check":
            print(check(k))
        elif args.command == "setup":
            changes = setup(k)
            for change in changes:
                log.info("%s", change)
            if not changes:
                log.info("topic %s and ACLs already in place", k.topic)
        else:
            print(describe(k))
    except (KafkaError, SettingsError, RuntimeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if client_errors.cause():
            reason += f" (cause: {client_errors.cause()})"
        print(f"kafka {args.command} failed: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
