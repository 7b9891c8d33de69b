"""Pure figures of the dashboard: top N + Other, small-count suppression, freshness, totals."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from cassandra import Unauthorized
from cassandra.cluster import NoHostAvailable
from pydantic import SecretStr

from common.settings import Account, CassandraSettings
from dashboard import queries

STATS = pd.DataFrame(
    {
        "country": ["Chile", "Norway", "Iceland", "France", "Brazil", "Empty", "Peru"],
        "users": [4, 40, 1, 25, 12, 0, 12],
        "sum_age": [200, 1520, 29, 1125, 360, 0, 480],
    }
)
CASSANDRA = CassandraSettings(
    hosts=("127.0.0.1",),
    port=9042,
    local=True,
    local_dc="datacenter1",
    keyspace="ks",
    replication={"class": "SimpleStrategy", "replication_factor": 1},
    admin=Account("a", SecretStr("p")),
    writer=Account("w", SecretStr("p")),
    reader=Account("dashboard_reader", SecretStr("p")),
)


def test_country_bars_top_n_sorted_then_other() -> None:
    bars = queries.country_bars(STATS, top_n=3)
    assert bars.to_dict("records") == [
        {"country": "Norway", "users": 40.0, "label": "40"},
        {"country": "France", "users": 25.0, "label": "25"},
        {"country": "Brazil", "users": 12.0, "label": "12"},  # ties: alphabetical
        {"country": "Other (3 countries)", "users": 17.0, "label": "17"},
    ]


def test_country_bars_without_rest_has_no_other() -> None:
    bars = queries.country_bars(STATS, top_n=10)
    assert bars["country"].tolist() == ["Norway", "France", "Brazil", "Peru", "Chile", "Iceland"]


def test_viewer_bars_never_show_a_country_below_k() -> None:
    bars = queries.country_bars(STATS, top_n=10, min_count=5)
    assert bars.to_dict("records") == [
        {"country": "Norway", "users": 40.0, "label": "40"},
        {"country": "France", "users": 25.0, "label": "25"},
        {"country": "Brazil", "users": 12.0, "label": "12"},
        {"country": "Peru", "users": 12.0, "label": "12"},
        {"country": "Other (2 countries)", "users": 5.0, "label": "5"},
    ]


def test_viewer_other_bucket_below_k_has_no_value() -> None:
    stats = STATS[STATS["country"] != "Chile"]
    bars = queries.country_bars(stats, top_n=10, min_count=5)
    other = bars.iloc[-1].to_dict()
    assert pd.isna(other.pop("users"))  # no bar: the chart cannot reveal the one small country
    assert other == {"country": "Other (1 country)", "label": "< 5"}


def test_country_ages_are_exact_and_hidden_below_k_for_viewers() -> None:
    assert queries.country_ages(STATS, top_n=2).to_dict("records") == [
        {"country": "Norway", "average age": 38.0, "users": 40},
        {"country": "France", "average age": 45.0, "users": 25},
    ]
    viewer = queries.country_ages(STATS, top_n=10, min_count=5)
    assert viewer["country"].tolist() == ["Norway", "France", "Brazil", "Peru"]


def test_country_table_shows_small_counts_as_less_than_k() -> None:
    table = queries.country_table(STATS, min_count=5)
    assert table.to_dict("records")[-2:] == [
        {"country": "Chile", "users": "< 5", "average age": "-"},
        {"country": "Iceland", "users": "< 5", "average age": "-"},
    ]
    operator = queries.country_table(STATS)
    assert operator.to_dict("records")[-1] == {"country": "Iceland", "users": "1", "average age": "29.0"}


def test_suppressed() -> None:
    assert [queries.suppressed(n, 5) for n in (0, 4, 5, 6)] == ["< 5", "< 5", "5", "6"]
    assert queries.suppressed(1, None) == "1"


def test_key_figures_average_is_exact_not_an_average_of_averages() -> None:
    genders = pd.DataFrame({"gender": ["female", "male"], "users": [1, 3], "sum_age": [80, 60]})
    newest = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    figures = queries.key_figures(genders, STATS, last_minute=7, newest=newest)
    assert figures == queries.KeyFigures(
        total_users=4, countries=6, average_age=35.0, last_minute=7, newest=newest
    )


def test_key_figures_of_empty_tables() -> None:
    empty = pd.DataFrame({"gender": [], "users": [], "sum_age": []})
    countries = pd.DataFrame({"country": [], "users": [], "sum_age": []})
    assert queries.key_figures(empty, countries, 0, None) == queries.KeyFigures(0, 0, None, 0, None)


def test_freshness_and_human_age() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert queries.freshness_seconds(None, now) is None
    assert queries.freshness_seconds(now - dt.timedelta(seconds=42), now) == 42.0
    assert queries.freshness_seconds(now + dt.timedelta(seconds=3), now) == 0.0  # clock skew
    assert [queries.human_age(s) for s in (None, 4, 200, 7500, 3 * 86_400 + 4 * 3600)] == [
        "-",
        "4s",
        "3m 20s",
        "2h 5m",
        "3d 4h",
    ]


def test_reason_totals_sorted_zeros_dropped() -> None:
    quality = pd.DataFrame(
        {"reasons": [{"invalid_email": 2, "missing_uuid": 0}, {"invalid_email": 3, "missing_uuid": 2}, {}]}
    )
    assert queries.reason_totals(quality).to_dict("records") == [
        {"reason": "invalid_email", "rows": 5},
        {"reason": "missing_uuid", "rows": 2},
    ]


def test_gender_split_shares() -> None:
    genders = pd.DataFrame({"gender": ["female", "male"], "users": [1, 3], "sum_age": [1, 1]})
    assert queries.gender_split(genders).to_dict("records") == [
        {"gender": "female", "users": 1, "share %": 25.0},
        {"gender": "male", "users": 3, "share %": 75.0},
    ]


def test_batch_duration_prefers_the_trigger_time() -> None:
    assert queries.batch_duration_ms(850, {"triggerExecution": 900}) == 850
    assert queries.batch_duration_ms(None, {"triggerExecution": 900}) == 900
    assert queries.batch_duration_ms(None, None) is None


def test_age_bands_ordered_by_lower_bound_unknown_last() -> None:
    labels = ["unknown", "65+", "18-24", "0-17", "45-54"]
    assert sorted(labels, key=queries._band_key) == ["0-17", "18-24", "45-54", "65+", "unknown"]


def test_explain_says_what_failed_without_a_traceback() -> None:
    refused = NoHostAvailable(
        "Unable to connect to any servers", {"127.0.0.1:9042": ConnectionRefusedError(111)}
    )
    assert queries.explain(refused, CASSANDRA) == (
        "Cassandra is unreachable at 127.0.0.1:9042. Retrying at every refresh."
    )
    missing_ks = NoHostAvailable("Unable to connect to any servers using keyspace 'ks'", ["127.0.0.1"])
    assert queries.explain(missing_ks, CASSANDRA).startswith("Keyspace ks not found")
    denied = Unauthorized(
        'Error from server: code=2100 [Unauthorized] message="User dashboard_reader has no SELECT '
        'permission on <table ks.country_stats> or any of its parents"'
    )
    assert queries.explain(denied, CASSANDRA) == (
        "Role dashboard_reader lacks a grant: User dashboard_reader has no SELECT permission on "
        "<table ks.country_stats> or any of its parents. Run `make up` to restore the grants."
    )
