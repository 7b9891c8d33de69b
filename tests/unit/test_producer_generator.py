"""The offline generator: API 1.4 shape per nationality, determinism, novelty, defects."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest import pools
from ingest.generator import DEFECTS, LocalGenerator

NOW = datetime(2026, 11, 27, 23, 40, 0, 123000, tzinfo=UTC)


def _paths(value: Any, prefix: str = "") -> dict[str, str]:
    """Every key path of a JSON value with its JSON type."""
    out = {prefix or "$": type(value).__name__}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(_paths(item, f"{prefix}.{key}"))
    return out


def _fixture_users(fixtures_dir: Path) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    for path in sorted(fixtures_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        users.extend(doc.get("results", []))
    return users


def _shapes(users: list[dict[str, Any]]) -> dict[str, dict[str, set[str]]]:
    shapes: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for user in users:
        for path, kind in _paths(json.loads(orjson.dumps(user))).items():
            shapes[user["nat"]][path].add(kind)
    return {nat: dict(paths) for nat, paths in shapes.items()}


@pytest.fixture(scope="module")
def generated() -> list[dict[str, Any]]:
    return LocalGenerator(seed="shape").document(5000, NOW)["results"]


def test_same_shape_and_types_as_the_api_per_nationality(
    fixtures_dir: Path, generated: list[dict[str, Any]]
) -> None:
    expected = _shapes(_fixture_users(fixtures_dir))
    assert _shapes(generated) == expected


def test_same_key_order_as_the_api(fixtures_dir: Path, generated: list[dict[str, Any]]) -> None:
    fixture = _fixture_users(fixtures_dir)[0]
    assert list(generated[0]) == list(fixture)
    assert list(generated[0]["location"]) == list(fixture["location"])
    assert list(generated[0]["login"]) == list(fixture["login"])


def test_quirks(generated: list[dict[str, Any]]) -> None:
    by_nat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for user in generated:
        by_nat[user["nat"]].append(user)
    assert len(by_nat) == 21
    for nat, users in by_nat.items():
        assert all(isinstance(u["location"]["postcode"], str) == (nat in {"CA", "GB", "NO"}) for u in users)
        assert all((u["id"]["value"] is None) == (nat in {"IR", "NZ", "TR", "UA"}) for u in users)
    persian = re.compile(r"[\u0600-\u06ff]")
    cyrillic = re.compile(r"[\u0400-\u04ff]")
    devanagari = re.compile(r"[\u0900-\u097f]")
    assert all(persian.search(u["name"]["first"]) for u in by_nat["IR"])
    assert any(cyrillic.search(u["name"]["first"]) for u in by_nat["UA"])
    assert any(cyrillic.search(u["name"]["last"]) for u in by_nat["RS"])
    assert any(devanagari.search(u["name"]["first"]) for u in by_nat["IN"])
    # E-mails stay ASCII, as the API transliterates.
    assert all(u["email"].isascii() and u["email"].endswith("@example.com") for u in generated)
    for u in by_nat["NO"]:
        day, month, year = u["dob"]["date"][8:10], u["dob"]["date"][5:7], u["dob"]["date"][2:4]
        assert u["id"]["value"].startswith(day + month + year)


def test_dates_and_ages_match_the_fetch_time(generated: list[dict[str, Any]]) -> None:
    for user in generated:
        for field in ("dob", "registered"):
            born = datetime.strptime(user[field]["date"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            age = (
                NOW.year
                - born.year
                - ((NOW.month, NOW.day, NOW.time()) < (born.month, born.day, born.time()))
            )
            assert user[field]["age"] == age
        assert 21 <= user["dob"]["age"] <= 82
        float(user["location"]["coordinates"]["latitude"])
        assert isinstance(user["location"]["coordinates"]["longitude"], str)


def test_deterministic_from_a_seed() -> None:
    first = LocalGenerator(seed="s1", nationalities=["GB", "IR"])
    again = LocalGenerator(seed="s1", nationalities=["GB", "IR"])
    other = LocalGenerator(seed="s2", nationalities=["GB", "IR"])
    pages = [first.document(50, NOW), first.document(50, NOW)]
    assert [again.document(50, NOW), again.document(50, NOW)] == pages
    assert other.document(50, NOW) != pages[0]
    assert pages[0]["info"] == {"seed": "s1", "results": 50, "page": 1, "version": "1.4"}
    assert pages[1]["info"]["page"] == 2
    assert {u["nat"] for p in pages for u in p["results"]} == {"GB", "IR"}


def test_every_user_is_new(fixtures_dir: Path) -> None:
    generator = LocalGenerator(seed="novel")
    users = [u for _ in range(10) for u in generator.document(5000, NOW)["results"]]
    uuids = [u["login"]["uuid"] for u in users]
    assert len(set(uuids)) == len(uuids)
    assert all(
        re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u) for u in uuids
    )
    fixture_users = _fixture_users(fixtures_dir)
    assert not set(uuids) & {u["login"]["uuid"] for u in fixture_users}
    people = {
        (u["name"]["first"], u["name"]["last"], u["location"]["street"]["number"], u["phone"]) for u in users
    }
    assert len(people) > 0.99 * len(users)


def _defects(user: dict[str, Any]) -> list[str]:
    found = []
    if "uuid" not in user["login"]:
        found.append("missing_uuid")
    if "@" not in user["email"]:
        found.append("bad_email")
    if not 0 <= user["dob"]["age"] <= 120:
        found.append("age_out_of_range")
    if user["location"]["country"] == "":
        found.append("empty_country")
    if user["nat"] not in pools.NATIONALITIES:
        found.append("unknown_nat")
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", user["dob"]["date"]):
        found.append("bad_dob_date")
    return found


def test_malformed_records_at_the_requested_rate() -> None:
    generator = LocalGenerator(seed="bad", malformed_rate=0.1)
    users = generator.document(5000, NOW)["results"] + generator.document(5000, NOW)["results"]
    found = [d for u in users for d in _defects(u)]
    assert sum(generator.defects.values()) == len(found)
    assert set(found) == set(DEFECTS)
    assert 0.09 <= len(found) / len(users) <= 0.11
    assert not [d for u in LocalGenerator(seed="good").document(5000, NOW)["results"] for d in _defects(u)]


def test_stored_pools_are_the_build_from_the_fixtures(fixtures_dir: Path) -> None:
    assert pools.POOLS_FILE.read_text(encoding="utf-8") == pools.dumps(pools.build(fixtures_dir))
