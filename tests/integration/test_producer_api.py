"""API responses, good and bad, from a real HTTP server to the real Kafka.

What reaches Kafka must be exactly the valid responses minus the credentials,
each with its identity; every invalid response is logged with its reason and
never published.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from ingest.envelope import CREDENTIALS
from ingest.runner import Runner
from ingest.settings import from_sources
from tests.integration.producer_support import Reply, api_server, consume, end_offsets, headers_of


def _without_credentials(document: dict[str, Any]) -> list[dict[str, Any]]:
    users = copy.deepcopy(document["results"])
    for user in users:
        for key in CREDENTIALS:
            del user["login"][key]
    return users


def _settings(tmp_path: Path, url: str, producer_id: str, **extra: str) -> Any:
    env = {
        "PRODUCER_SOURCE": "api",
        "PRODUCER_API_URL": url,
        "PRODUCER_ID": producer_id,
        "PRODUCER_SPOOL_DIR": str(tmp_path / "spool"),
        "PRODUCER_METRICS_PORT": "0",
        "PRODUCER_INTERVAL_S": "0.01",
        "PRODUCER_BACKOFF_BASE_S": "0.01",
        "PRODUCER_BACKOFF_MAX_S": "0.05",
        "PRODUCER_READ_TIMEOUT_S": "0.5",
        **extra,
    }
    return from_sources(env)


def test_valid_responses_are_published_and_invalid_ones_rejected_with_reasons(
    stack: Settings, fixtures_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = [
        json.loads((fixtures_dir / name).read_text())
        for name in ("nat-GB.json", "nat-IR.json", "mixed-10.json")
    ]
    mismatch = copy.deepcopy(good[0])
    mismatch["info"]["results"] = 9
    replies = [
        Reply(200, json.dumps(good[0]).encode()),
        Reply(500, b"internal error", "text/plain"),
        Reply(503, (fixtures_dir / "error-503.html").read_bytes(), "text/html"),
        Reply(429, (fixtures_dir / "error-429.json").read_bytes(), headers=(("Retry-After", "1"),)),
        Reply(200, json.dumps(good[1]).encode(), delay_s=2.0),  # answered too late: a timeout
        Reply(200, b'{"results": [', "application/json"),
        Reply(200, json.dumps({"info": good[0]["info"]}).encode()),
        Reply(200, json.dumps(mismatch).encode()),
        Reply(200, json.dumps(good[1]).encode()),
        Reply(200, json.dumps(good[2]).encode()),
    ]
    producer_id = f"test-api-{uuid.uuid4().hex[:8]}"
    since = end_offsets(stack.kafka)
    caplog.set_level(logging.INFO)
    with api_server(replies) as (url, served):
        settings = _settings(tmp_path, url, producer_id, PRODUCER_MAX_BATCHES="3")
        assert Runner(settings, stack.kafka).run() == 0
    assert len(served) == len(replies)
    assert all("results=10" in path for path in served)

    rejected = [m for m in caplog.messages if m.startswith("rejected API response")]
    assert [re.search(r"reason=(\w+)", m).group(1) for m in rejected] == [  # type: ignore[union-attr]
        "http_5xx",
        "http_5xx",
        "rate_limited",
        "timeout",
        "invalid_json",
        "missing_results",
        "info_mismatch",
    ]
    logged = [re.search(r"batch seq=(\d+) id=(\S+) source=api users=10", m) for m in caplog.messages]
    identities = [(int(m.group(1)), m.group(2)) for m in logged if m]
    assert [seq for seq, _ in identities] == [0, 1, 2]

    consumed = consume(stack.kafka, since, producer_id, 3)
    expected = []
    for (seq, batch_id), document in zip(identities, good, strict=True):
        fetched_at = next(c.value["meta"]["fetched_at"] for c in consumed if c.value["meta"]["seq"] == seq)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fetched_at)
        meta = {
            "batch_id": batch_id,
            "producer_id": producer_id,
            "seq": seq,
            "fetched_at": fetched_at,
            "source": "api",
            "part": 0,
            "parts": 1,
            "first_index": 0,
        }
        value = {"meta": meta, "info": document["info"], "results": _without_credentials(document)}
        expected.append((batch_id.encode(), value, headers_of(meta)))
    assert [(c.key, c.value, c.headers) for c in consumed] == expected


def test_auto_source_switches_to_local_when_the_api_does_not_answer(
    stack: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    producer_id = f"test-auto-{uuid.uuid4().hex[:8]}"
    since = end_offsets(stack.kafka)
    caplog.set_level(logging.INFO)
    # A port nobody listens on: connection refused, the API "does not answer".
    settings = _settings(
        tmp_path, "http://127.0.0.1:9/api/1.4/", producer_id, PRODUCER_SOURCE="auto", PRODUCER_MAX_BATCHES="2"
    )
    assert Runner(settings, stack.kafka).run() == 0
    switched = [
        m for m in caplog.messages if "does not answer" in m and "switching to the local generator" in m
    ]
    assert len(switched) == 1
    consumed = consume(stack.kafka, since, producer_id, 2)
    assert [
        (c.value["meta"]["seq"], c.value["meta"]["source"], len(c.value["results"])) for c in consumed
    ] == [
        (0, "local", 10),
        (1, "local", 10),
    ]
