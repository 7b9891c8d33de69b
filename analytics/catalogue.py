"""The catalogue of analyses: each one's question, why it matters, its store and its query.

Add an analysis here (and its query function in the module of its store).
"""

from __future__ import annotations

from collections.abc import Sequence

from analytics.cassandra_queries import (
    age_bands,
    country_age_deviation,
    gender_overview,
    new_users_by_hour,
    quality_by_hour,
)
from analytics.delta_queries import (
    age_by_country,
    age_by_gender,
    bronze_volume_by_hour,
    country_stats_as_of,
    country_stats_versions_ago,
    email_domains,
    gender_by_nationality,
    quarantine_rate_by_reason,
    registration_cohorts,
    top_cities,
)
from analytics.model import Analysis, Store

ANALYSES: tuple[Analysis, ...] = (
    Analysis(
        "age_by_country",
        "Age distribution per country",
        "How old are the users of each country: mean, quartiles, median, range?",
        "Audiences differ by market; a median and quartiles resist the outliers a mean hides.",
        "delta",
        age_by_country,
        chart=("country", "median_age"),
    ),
    Analysis(
        "age_by_gender",
        "Age distribution per gender",
        "Do the age profiles of women and men differ?",
        "A gap between the genders' ages changes who a campaign or product should target.",
        "delta",
        age_by_gender,
        chart=("gender", "median_age"),
    ),
    Analysis(
        "gender_by_nationality",
        "Gender ratio by nationality",
        "Which nationalities are the most unbalanced between women and men?",
        "An unbalanced sample skews every per-nationality figure; it is also a check of the source.",
        "delta",
        gender_by_nationality,
        chart=("nat", "female_pct"),
    ),
    Analysis(
        "registration_cohorts",
        "Registration cohorts",
        "How many users registered each year, and how old were they then?",
        "Cohorts show the growth of the user base and whether it recruits younger or older people over time.",
        "delta",
        registration_cohorts,
        chart=("registration_year", "users"),
    ),
    Analysis(
        "email_domains",
        "Share of users per email domain",
        "Which email providers do users use?",
        "Deliverability and anti-spam depend on the providers; one dominant domain is a data-source smell.",
        "delta",
        email_domains,
        chart=("email_domain", "share_pct"),
    ),
    Analysis(
        "top_cities",
        "Top cities of the top countries",
        "Within the countries with most users, which cities concentrate them?",
        "Where to open an office, place servers or run local events.",
        "delta",
        top_cities,
        chart=("city", "users"),
    ),
    Analysis(
        "country_age_deviation",
        "Countries whose average age differs most from the global one",
        "Which countries are much younger or older than the user base as a whole?",
        "Outlier markets need their own content; a large gap on few users is a sampling warning.",
        "cassandra",
        country_age_deviation,
        "global average = sum(sum_age) / sum(count_users) over all countries, exact; countries with "
        "fewer than --min-users users left out; sorted by the absolute difference",
        ("country", "difference"),
    ),
    Analysis(
        "gender_overview",
        "Users and average age per gender",
        "What is the gender split of all users, and their average age?",
        "The headline split the live dashboard follows; sum_age keeps the average exact.",
        "cassandra",
        gender_overview,
        "shares of the total; avg = sum_age / count_users",
        ("gender", "users"),
    ),
    Analysis(
        "age_bands",
        "Users per age band",
        "How are users spread over the age bands?",
        "The age pyramid of the base, for segmenting and for spotting an ageing or rejuvenating audience.",
        "cassandra",
        age_bands,
        "shares of the total, bands in age order",
        ("age_band", "users"),
    ),
    Analysis(
        "quality_by_hour",
        "Data quality per hour",
        "What share of incoming records is quarantined, and why, hour by hour?",
        "A rising quarantine rate means the source changed or broke; the reasons say where to look.",
        "cassandra",
        quality_by_hour,
        "sum of the micro-batches' counts and reason maps per hour (UTC)",
        ("hour", "quarantine_pct"),
    ),
    Analysis(
        "new_users_by_hour",
        "New users per hour",
        "How many new (never seen before) users arrived each hour?",
        "The growth signal: it excludes users the source sent again, unlike raw ingestion volume.",
        "cassandra",
        new_users_by_hour,
        "the hours with new users, in time order",
        ("hour", "new_users"),
    ),
    Analysis(
        "bronze_volume_by_hour",
        "Ingestion volume per hour (bronze)",
        "How many Kafka records, users and bytes came in each hour, duplicates and rejects included?",
        "Capacity planning and producer health: a gap is an outage, a spike a replay or a burst.",
        "delta",
        bronze_volume_by_hour,
        chart=("hour", "users"),
    ),
    Analysis(
        "quarantine_rate_by_reason",
        "Quarantine rate by reason over time (Delta)",
        "For each hour, how many rows failed each quality rule, relative to the users received?",
        "Separates a broken producer (one reason explodes) from a noisy source (all reasons creep up).",
        "delta",
        quarantine_rate_by_reason,
        chart=("reason", "rows"),
    ),
    Analysis(
        "country_stats_versions_ago",
        "country_stats N versions ago vs now (time travel)",
        "How did the per-country figures look a few micro-batches ago, and what changed since?",
        "Delta keeps every version of the gold table: an audit of what the dashboard showed at that moment.",
        "delta",
        country_stats_versions_ago,
        chart=("country", "new_users"),
    ),
    Analysis(
        "country_stats_as_of",
        "country_stats as of yesterday vs now (time travel)",
        "How did the per-country figures look 24 hours ago?",
        "Day-over-day growth per market without keeping snapshots: TIMESTAMP AS OF reads the past table.",
        "delta",
        country_stats_as_of,
        chart=("country", "new_users"),
    ),
)

BY_NAME: dict[str, Analysis] = {a.name: a for a in ANALYSES}


def selected(names: Sequence[str] | None, store: Store) -> list[Analysis]:
    """The analyses of a store, only the named ones when names are given."""
    return [a for a in ANALYSES if a.store == store and (not names or a.name in names)]
