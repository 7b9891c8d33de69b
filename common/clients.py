"""The one builder per server for the project's Python clients: Cassandra, MongoDB, Kafka, TLS.

Every process (the job's driver and listener, the batch jobs, ops, the dashboard, analytics,
bench) connects through these, so an account, a timeout default or a TLS setting
(CASSANDRA_SSL and its CA, MONGO_TLS in the URI, SASL_SSL for Kafka) cannot be forgotten in
one place. Spark's own connectors are configured in jobs/io/ (session.py: the JVM trust store).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy
from pymongo import MongoClient, uri_parser

from common.settings import Account, CassandraSettings, KafkaSettings, Settings

CASSANDRA_CONNECT_TIMEOUT_S = 10.0
CASSANDRA_REQUEST_TIMEOUT_S = 60.0  # schema changes on a busy 2-core machine can take a while
MONGO_TIMEOUT_MS = 5000

MongoDocument = dict[str, Any]
REFUSED_PROBE_TIMEOUT_S = 2.0


def refused(addresses: Iterable[tuple[str, int]], timeout_s: float = REFUSED_PROBE_TIMEOUT_S) -> str | None:
    """ "nothing listens on ..." when every address refuses a TCP connection, else None.

    A stopped server refuses at once, while the Kafka and Mongo clients retry until their own
    timeout (5-10 s) before saying so: a status command would make its user wait for nothing.
    Only a refusal counts; an address that is slow, unknown or filtered is left to the client.
    """
    tried = []
    for host, port in addresses:
        tried.append(f"{host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except ConnectionRefusedError:
            continue
        except OSError:
            return None
    return f"nothing listens on {', '.join(tried)} (connection refused)" if tried else None


def kafka_addresses(k: KafkaSettings) -> list[tuple[str, int]]:
    """The bootstrap servers as (host, port); an address without a port is left out."""
    out = []
    for server in k.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


def mongo_addresses(settings: Settings) -> list[tuple[str, int]]:
    """The hosts of the Mongo URI (none for a mongodb+srv:// URI: DNS decides those)."""
    uri = settings.mongo.uri(None)
    if uri.startswith("mongodb+srv://"):
        return []
    try:
        return [(str(h), int(p)) for h, p in uri_parser.parse_uri(uri, validate=False)["nodelist"]]
    except Exception:  # an invalid URI is reported by the client itself
        return []


# --- Cassandra ------------------------------------------------------------------------------------


def cassandra_tls_context(settings: CassandraSettings) -> ssl.SSLContext:
    """Client TLS context: certificate and host name verified, TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def cassandra_cluster(
    settings: CassandraSettings,
    account: Account,
    *,
    connect_timeout: float = CASSANDRA_CONNECT_TIMEOUT_S,
    request_timeout: float = CASSANDRA_REQUEST_TIMEOUT_S,
    **extra: Any,
) -> Cluster:
    """The one way the project's Python clients reach Cassandra: an account, the local DC, timeouts.

    With CASSANDRA_SSL=true the connection is TLS, verified against CASSANDRA_SSL_CAFILE (or the
    system's CAs) with the host name (the driver passes each node's address for the check).
    """
    if settings.ssl and "ssl_context" not in extra:
        extra["ssl_context"] = cassandra_tls_context(settings)
    return Cluster(
        contact_points=list(settings.hosts),
        port=settings.port,
        auth_provider=PlainTextAuthProvider(
            username=account.user, password=account.password.get_secret_value()
        ),
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=settings.local_dc),
                request_timeout=request_timeout,
            )
        },
        connect_timeout=connect_timeout,
        control_connection_timeout=connect_timeout,
        protocol_version=5,
        **extra,
    )


@contextmanager
def cassandra_session(
    settings: CassandraSettings, account: Account, keyspace: str | None = None
) -> Iterator[Session]:
    """An authenticated session; the cluster object is always shut down afterwards."""
    cluster = cassandra_cluster(settings, account)
    try:
        yield cluster.connect(keyspace)
    finally:
        cluster.shutdown()


# --- MongoDB --------------------------------------------------------------------------------------


def mongo_client(settings: Settings, account: Account | None, **options: Any) -> MongoClient[MongoDocument]:
    """A client for one account (TLS and its CA come with the URI); short timeouts by default:
    a tool must answer, not hang. `options` override them."""
    defaults: dict[str, Any] = {
        "serverSelectionTimeoutMS": MONGO_TIMEOUT_MS,
        "connectTimeoutMS": MONGO_TIMEOUT_MS,
        "socketTimeoutMS": 30_000,
        "appname": "rua-ops",
    }
    return MongoClient(settings.mongo.uri(account), **{**defaults, **options})


# --- Kafka ----------------------------------------------------------------------------------------


def kafka_config(k: KafkaSettings, account: Account, **overrides: Any) -> dict[str, Any]:
    """kafka-python keyword arguments for one account (SASL, and TLS with the host name checked
    under SASL_SSL), plus the caller's own options (timeouts, client id)."""
    config: dict[str, Any] = dict(k.client_config(account))
    config.update(overrides)
    return config
