"""common/clients.refused: a stopped server is reported at once, anything else is left to the client."""

from __future__ import annotations

import socket
import time

import pytest

from common import clients
from common.settings import from_mapping
from tests.unit.settings_env import minimal_env

pytestmark = pytest.mark.unit


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_only_addresses_that_all_refuse_are_reported() -> None:
    a, b = closed_port(), closed_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        listening = int(server.getsockname()[1])
        started = time.monotonic()
        assert clients.refused([("127.0.0.1", a), ("127.0.0.1", b)]) == (
            f"nothing listens on 127.0.0.1:{a}, 127.0.0.1:{b} (connection refused)"
        )
        assert time.monotonic() - started < 1.0  # no client timeout waited for
        assert clients.refused([("127.0.0.1", a), ("127.0.0.1", listening)]) is None
    # A name that does not resolve is not a refusal: the client reports it in its own words.
    assert clients.refused([("no-such-host.invalid", a)]) is None
    assert clients.refused([]) is None


def test_the_addresses_come_from_the_settings() -> None:
    s = from_mapping(
        minimal_env(
            KAFKA_BOOTSTRAP_SERVERS="k1:9092, [::1]:9093,k3",
            MONGO_URI="mongodb://u:p@m1:27017,m2:27018/?authSource=admin",
        )
    )
    assert clients.kafka_addresses(s.kafka) == [("k1", 9092), ("::1", 9093)]
    assert clients.mongo_addresses(s) == [("m1", 27017), ("m2", 27018)]
    srv = from_mapping(minimal_env(MONGO_URI="mongodb+srv://u:p@cluster.example.com/"))
    assert clients.mongo_addresses(srv) == []
