"""The sharing rules of jobs.export, without servers: refusals, suppression, the extract."""

from __future__ import annotations

import pytest

from jobs import export
from jobs.core.pseudonymise import pseudonym

KEY = bytes(range(32))


@pytest.mark.parametrize(
    ("what", "fields", "reason"),
    [
        ("bronze", None, "restricted store"),
        ("quarantine", None, "restricted store"),
        ("silver_users", None, "restricted store"),
        ("random_user_table", None, "per-person table"),
        ("email", None, "confidential or restricted field"),
        ("users_raw", None, "not an export"),
        ("users_pseudonymised", ["country", "full_name"], "confidential or restricted field"),
        ("users_pseudonymised", ["email"], "confidential or restricted field"),
        ("users_pseudonymised", ["postcode"], "confidential or restricted field"),
        ("users_pseudonymised", ["favourite_colour"], "not in the pseudonymised extract"),
        ("country_stats", ["country"], "exported whole"),
    ],
)
def test_forbidden_requests_are_refused_with_their_rule(
    what: str, fields: list[str] | None, reason: str
) -> None:
    with pytest.raises(export.Refused, match=reason):
        export.check_request(what, fields)


def test_allowed_requests() -> None:
    assert export.check_request("country_stats", None) == ()
    assert export.check_request("users_pseudonymised", None) == export.EXTRACT_FIELDS
    assert export.check_request("users_pseudonymised", ["country", "age_band"]) == ("country", "age_band")


def test_counts_below_k_are_shown_as_less_than_k_and_their_figures_withheld() -> None:
    rows = [
        {
            "country": "A",
            "count_users": 4,
            "sum_age": 100,
            "avg_age": 25.0,
            "male_count": 2,
            "female_count": 2,
        },
        {
            "country": "B",
            "count_users": 5,
            "sum_age": 150,
            "avg_age": 30.0,
            "male_count": 3,
            "female_count": 2,
        },
    ]
    withheld = export.AGGREGATES["country_stats"][2]
    assert export.suppress(rows, "count_users", withheld, 5) == [
        {
            "country": "A",
            "count_users": "< 5",
            "sum_age": None,
            "avg_age": None,
            "male_count": None,
            "female_count": None,
        },
        rows[1],
    ]


def test_extract_holds_no_identifier_and_generalises_small_countries() -> None:
    docs = [
        {
            "_id": f"id-{i}",
            "country": "Big",
            "nat": "FR",
            "gender": "female",
            "age": 30 + i,
            "birth_year": 1990,
            "email_pseudo": f"v1:e{i}",
            "phone_pseudo": f"v1:p{i}",
            "full_name": "Never Exported",
        }
        for i in range(5)
    ] + [
        {
            "_id": "id-9",
            "country": "Tiny",
            "nat": "NO",
            "gender": "male",
            "age": 70,
            "birth_year": 1956,
            "email_pseudo": "v1:e9",
            "phone_pseudo": None,
        }
    ]
    rows = export.extract_rows(docs, KEY, 2, 5, export.EXTRACT_FIELDS)
    assert rows[-1] == {
        "subject": pseudonym("export:id-9", KEY, 2),
        "birth_year": 1956,
        "age_band": "65+",
        "gender": "male",
        "country": "other",
        "nat": "other",
        "email_pseudo": "v1:e9",
        "phone_pseudo": None,
    }
    assert [r["country"] for r in rows[:5]] == ["Big"] * 5
    assert "id-" not in str(rows) and "Never" not in str(rows)
