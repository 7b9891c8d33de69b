"""jobs.export against the real Cassandra and MongoDB of the test namespace, with its log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import clients
from common.settings import Settings
from jobs import export


@pytest.fixture
def seeded(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, str]]:
    """Two countries of this test only: one of 6 people, one of 2; removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    env = {**stack.env, "EXPORT_LOG": str(tmp_path / "exports.jsonl"), "DASHBOARD_MIN_COUNT": "5"}
    s = stack.__class__(**{**stack.__dict__, "env": env})
    c = s.cassandra
    big, tiny = f"Exportia-{tag}", f"Tinyland-{tag}"
    docs = [
        {
            "_id": f"{tag}-{i}",
            "country": big if i < 6 else tiny,
            "nat": "FR",
            "gender": "female",
            "age": 40,
            "birth_year": 1986,
            "email_pseudo": f"v1:{tag}{i}",
            "phone_pseudo": None,
            "full_name": "Secret Name",
        }
        for i in range(8)
    ]
    with (
        clients.cassandra_session(c, c.admin, c.keyspace) as sess,
        clients.mongo_client(s, s.mongo.admin) as client,
    ):
        for country, n in ((big, 6), (tiny, 2)):
            sess.execute(
                "INSERT INTO country_stats (country, count_users, sum_age, avg_age, male_count, female_count)"
                " VALUES (%s, %s, %s, %s, 0, %s)",
                (country, n, 40 * n, 40.0, n),
            )
        client[s.mongo.database]["randomUserCollection"].insert_many(docs)
        try:
            yield s, tag
        finally:
            for country in (big, tiny):
                sess.execute("DELETE FROM country_stats WHERE country = %s", (country,))
            client[s.mongo.database]["randomUserCollection"].delete_many(
                {"_id": {"$in": [d["_id"] for d in docs]}}
            )


def _log(s: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in export.export_log_path(s).read_text().splitlines()]


def test_country_stats_export_suppresses_small_counts_and_is_logged(
    seeded: tuple[Settings, str], tmp_path: Path
) -> None:
    s, tag = seeded
    out = tmp_path / "stats.json"
    rows = export.export(s, "country_stats", out, "steward", "quarterly report")
    mine = [r for r in json.loads(out.read_text()) if tag in r["country"]]
    assert [(r["country"], r["count_users"], r["sum_age"], r["female_count"]) for r in mine] == [
        (f"Exportia-{tag}", 6, 240, 6),
        (f"Tinyland-{tag}", "< 5", None, None),
    ]
    (entry,) = _log(s)
    assert {k: entry[k] for k in ("requester", "purpose", "what", "outcome", "rows", "k")} == {
        "requester": "steward",
        "purpose": "quarterly report",
        "what": "country_stats",
        "outcome": "exported",
        "rows": rows,
        "k": 5,
    }


def test_extract_is_pseudonymised_and_refusals_are_logged(
    seeded: tuple[Settings, str], tmp_path: Path
) -> None:
    s, tag = seeded
    out = tmp_path / "users.csv"
    export.export(
        s, "users_pseudonymised", out, "analyst", "churn study", ["subject", "country", "email_pseudo"]
    )
    text = out.read_text()
    lines = [line for line in text.splitlines() if f"v1:{tag}" in line]
    assert len(lines) == 8 and text.splitlines()[0] == "subject,country,email_pseudo"
    assert sorted(line.split(",")[1] for line in lines) == [f"Exportia-{tag}"] * 6 + ["other"] * 2
    assert tag + "-" not in text and "Secret" not in text
    with pytest.raises(export.Refused):
        export.export(s, "bronze", tmp_path / "no.json", "analyst", "curiosity")
    assert not (tmp_path / "no.json").exists()
    assert [e["outcome"] for e in _log(s)] == [
        "exported",
        "refused: bronze: restricted store: raw records never leave the platform",
    ]
