"""The insights report: every analysis documented, results rendered whole, JSON round trip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from analytics import catalogue, delta_queries, model, run
from analytics import report as insights_report
from analytics.model import Outcome, Result

RESULT = Result(
    "SELECT country, count_users, sum_age FROM ks.country_stats",
    ("country", "users", "difference"),
    [
        {"country": "Brazil", "users": 1, "difference": -7.9},
        {"country": "Spain | ES", "users": 2, "difference": 6.6},
    ],
    note="a note",
)
NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
PEOPLE = (
    "age_by_country",
    "age_by_gender",
    "gender_by_nationality",
    "registration_cohorts",
    "email_domains",
    "top_cities",
)


def test_the_catalogue_documents_every_analysis_and_covers_every_store() -> None:
    assert len(catalogue.BY_NAME) == len(catalogue.ANALYSES)
    for a in catalogue.ANALYSES:
        assert a.title and a.question.endswith("?") and a.why and a.store in model.STORES
    assert {a.store for a in catalogue.ANALYSES} == set(model.STORES)


def test_the_people_analyses_read_only_the_columns_they_need_of_silver() -> None:
    # Spark reads a Parquet column only when the query names it: no SELECT *, no one's name or id.
    assert {catalogue.BY_NAME[name].store for name in PEOPLE} == {"delta"}
    for sql in (
        delta_queries.AGE_BY_SQL,
        delta_queries.GENDER_BY_NAT_SQL,
        delta_queries.COHORTS_SQL,
        delta_queries.EMAIL_DOMAINS_SQL,
        delta_queries.TOP_CITIES_SQL,
    ):
        assert "FROM delta.`{silver}`" in sql
        assert "SELECT *" not in sql and "name" not in sql and "user_id" not in sql


def test_markdown_table_escapes_pipes_and_formats_numbers() -> None:
    assert insights_report.markdown_table(RESULT) == (
        "| country | users | difference |\n|---|---|---|\n| Brazil | 1 | -7.9 |\n| Spain \\| ES | 2 | 6.6 |"
    )


def test_cells() -> None:
    cell = insights_report.cell
    assert [cell(None), cell(2.0), cell(46.666), cell(0.5), cell(True), cell("x")] == [
        "",
        "2",
        "46.67",
        "0.5",
        "true",
        "x",
    ]


def test_svg_bars_draw_negative_values_left_of_zero() -> None:
    svg = insights_report.svg_bars(RESULT, "country", "difference")
    assert svg.startswith("<svg") and svg.count("<rect") == 2
    # zero is in the middle (170 + 420 / 2 = 380); -7.9 is the longest bar, drawn leftwards.
    assert '<rect x="170.0" y="0" width="210.0"' in svg
    assert insights_report.svg_bars(Result("q", ("a", "b"), []), "a", "b") == ""


def test_write_and_json_round_trip(tmp_path: Path) -> None:
    outcomes = [
        Outcome("country_age_deviation", RESULT, seconds=0.5),
        Outcome("bronze_volume_by_hour", None, "AnalysisException: table not found"),
    ]
    raw = run.outcomes_to_json(outcomes)
    assert run.outcomes_from_json(raw) == outcomes
    paths = insights_report.write(tmp_path, catalogue.BY_NAME, outcomes, NOW, {"cassandra": "ks"}, raw)
    assert [p.name for p in paths] == ["insights.md", "insights.html", "insights.json"]
    md = paths[0].read_text()
    assert "## Countries whose average age differs most from the global one" in md
    assert "```sql\nSELECT country, count_users, sum_age FROM ks.country_stats\n```" in md
    assert "**Failed:** `AnalysisException: table not found`" in md
    html = paths[1].read_text()
    assert html.count("<svg") == 1 and "<td>Spain | ES</td>" in html
