"""The one way data leaves the platform: aggregates or a pseudonymised extract, logged.

    python -m jobs.export --what country_stats --out stats.csv --requester NAME --purpose TEXT
    python -m jobs.export --what users_pseudonymised --out users.json --requester NAME --purpose TEXT

It enforces the sharing rules of docs/GOVERNANCE.md (section 3): raw or confidential fields,
bronze, silver and the quarantine are refused; counts below k (DASHBOARD_MIN_COUNT, the
dashboard's threshold, default 5) are written as "< k" with their sums and averages withheld;
in the extract, a country with fewer than k people becomes "other". Every export, refused or
not, is appended to EXPORT_LOG (who, what, why, rows). Reads as the read-only accounts.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common import clients
from common.settings import Settings, SettingsError, governance_settings, load
from contract import tables
from contract.tables import Aggregate
from jobs.core.aggregates import AGE_BANDS
from jobs.core.pseudonymise import pseudonym

log = logging.getLogger("jobs.export")

# Aggregates: Cassandra table -> (key column, count column, columns withheld under k), from the
# export rules of contract/tables.py.
AGGREGATES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    t.name: (t.export.key, t.export.count, t.export.withheld)
    for t in tables.TABLES
    if isinstance(t.export, Aggregate)
}
EXTRACT = "users_pseudonymised"
# The extract's fields: nothing that names, locates or contacts a person in clear.
EXTRACT_FIELDS = (
    "subject",
    "birth_year",
    "age_band",
    "gender",
    "country",
    "nat",
    "email_pseudo",
    "phone_pseudo",
)
# Asked for by name, these are refused with the rule that forbids them.
FORBIDDEN: dict[str, str] = {
    **{
        name: "restricted store: raw records never leave the platform"
        for name in ("bronze", "quarantine", "anomalies", "silver_users", "silver")
    },
    **{
        name: "confidential or restricted field: never exported"
        for name in (
            "user_id",
            "_id",
            "title",
            "first_name",
            "last_name",
            "full_name",
            "name",
            "email",
            "phone",
            "cell",
            "id",
            "national_id",
            "date_of_birth",
            "dob",
            "postcode",
            "street",
            "coordinates",
            "city",
            "state",
            "username",
            "picture",
        )
    },
    **{t.name: t.export for t in tables.TABLES if t.personal and isinstance(t.export, str)},
    "randomUserCollection": "per-person collection: use users_pseudonymised",
}
OTHER = "other"


class Refused(ValueError):
    """The sharing rules forbid this export (the message says which rule)."""


def min_count(env: Mapping[str, str]) -> int:
    """DASHBOARD_MIN_COUNT: the dashboard's own threshold, validated by the same field."""
    return governance_settings(env).dashboard_min_count


def check_request(what: str, fields: Sequence[str] | None) -> tuple[str, ...]:
    """The fields to export, or Refused naming the rule."""
    if what in FORBIDDEN:
        raise Refused(f"{what}: {FORBIDDEN[what]}")
    if what not in AGGREGATES and what != EXTRACT:
        raise Refused(f"{what}: not an export the sharing rules know ({', '.join([*AGGREGATES, EXTRACT])})")
    if what in AGGREGATES:
        if fields:
            raise Refused("aggregates are exported whole: --fields applies to users_pseudonymised")
        return ()
    chosen = tuple(fields) if fields else EXTRACT_FIELDS
    for name in chosen:
        if name in FORBIDDEN:
            raise Refused(f"{name}: {FORBIDDEN[name]}")
        if name not in EXTRACT_FIELDS:
            raise Refused(f"{name}: not in the pseudonymised extract ({', '.join(EXTRACT_FIELDS)})")
    return chosen


def suppress(
    rows: list[dict[str, Any]], count_column: str, withheld: Sequence[str], k: int
) -> list[dict[str, Any]]:
    """Counts below k as "< k", and the figures that would reveal them withheld (None)."""
    out = []
    for row in rows:
        count = row.get(count_column)
        small = isinstance(count, int) and count < k
        out.append({**row, count_column: f"< {k}", **dict.fromkeys(withheld)} if small else dict(row))
    return out


def age_band_of(age: object) -> str | None:
    if not isinstance(age, int) or age < 0:
        return None
    # The same bands as the statistics (an open last band).
    for label, upper in AGE_BANDS:
        if upper is None or age <= upper:
            return label
    raise AssertionError("AGE_BANDS has no open last band")


def extract_rows(
    documents: list[dict[str, Any]], key: bytes, key_version: int, k: int, fields: Sequence[str]
) -> list[dict[str, Any]]:
    """Mongo user documents -> extract rows; a country with fewer than k people becomes OTHER."""
    sizes = Counter(d.get("country") for d in documents)
    rows = []
    for d in sorted(documents, key=lambda doc: str(doc.get("_id"))):
        full = {
            "subject": pseudonym(f"export:{d.get('_id')}", key, key_version),
            "birth_year": d.get("birth_year"),
            "age_band": age_band_of(d.get("age")),
            "gender": d.get("gender"),
            "country": d.get("country") if sizes[d.get("country")] >= k else OTHER,
            "nat": d.get("nat") if sizes[d.get("country")] >= k else OTHER,
            "email_pseudo": d.get("email_pseudo"),
            "phone_pseudo": d.get("phone_pseudo"),
        }
        rows.append({f: full[f] for f in fields})
    return rows


def read_aggregate(settings: Settings, table: str) -> list[dict[str, Any]]:
    c = settings.cassandra
    key_column = AGGREGATES[table][0]
    with clients.cassandra_session(c, c.reader, c.keyspace) as sess:
        rows = [dict(r._asdict()) for r in sess.execute(f"SELECT * FROM {table}")]  # noqa: S608 (a constant)
    for row in rows:
        for name, value in row.items():
            if isinstance(value, dt.datetime):
                row[name] = value.replace(tzinfo=dt.UTC).isoformat()
    return sorted(rows, key=lambda r: str(r[key_column]))


def read_users(settings: Settings) -> list[dict[str, Any]]:
    projection = {
        f: 1 for f in ("country", "nat", "gender", "age", "birth_year", "email_pseudo", "phone_pseudo")
    }
    with clients.mongo_client(settings, settings.mongo.reader) as client:
        return list(client[settings.mongo.database]["randomUserCollection"].find({}, projection))


def write(rows: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        with out.open("w", newline="", encoding="utf-8") as handle:
            columns = list(rows[0]) if rows else []
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    else:
        out.write_text(json.dumps(rows, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")


def export_log_path(settings: Settings) -> Path:
    path = Path(governance_settings(settings.env).export_log)
    return path if path.is_absolute() else settings.stack.root / path


def record(settings: Settings, entry: dict[str, Any]) -> None:
    """Append one line to the export log (who, what, why, rows, outcome)."""
    path = export_log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")


def export(
    settings: Settings,
    what: str,
    out: Path,
    requester: str,
    purpose: str,
    fields: Sequence[str] | None = None,
) -> int:
    """Run one export; returns the rows written. Refused requests are logged, then raised."""
    entry: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "requester": requester,
        "purpose": purpose,
        "what": what,
        "fields": list(fields or []),
        "out": str(out),
    }
    if not requester.strip() or not purpose.strip():
        record(settings, {**entry, "outcome": "refused: requester and purpose are required"})
        raise Refused("--requester and --purpose are required and must not be blank")
    try:
        chosen = check_request(what, fields)
    except Refused as exc:
        record(settings, {**entry, "outcome": f"refused: {exc}"})
        raise
    k = min_count(settings.env)
    if what in AGGREGATES:
        _, count_column, withheld = AGGREGATES[what]
        rows = suppress(read_aggregate(settings, what), count_column, withheld, k)
    else:
        p = settings.pseudonym
        rows = extract_rows(read_users(settings), p.key, p.key_version, k, chosen)
    write(rows, out)
    record(settings, {**entry, "outcome": "exported", "rows": len(rows), "k": k})
    log.info("exported %d rows of %s to %s for %s (%s)", len(rows), what, out, requester, purpose)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m jobs.export", description=__doc__.splitlines()[0])
    parser.add_argument("--what", required=True, help=f"{', '.join(AGGREGATES)} or {EXTRACT}")
    parser.add_argument("--out", required=True, type=Path, help="file to write (.csv or .json)")
    parser.add_argument("--requester", required=True, help="who asks (recorded)")
    parser.add_argument("--purpose", required=True, help="why (recorded)")
    parser.add_argument("--fields", help=f"comma-separated subset of the extract: {','.join(EXTRACT_FIELDS)}")
    args = parser.parse_args(argv)
    fields = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else None
    try:
        export(load(), args.what, args.out, args.requester, args.purpose, fields)
    except Refused as exc:
        log.error("export refused: %s", exc)
        return 3
    except SettingsError as exc:
        log.error("export failed: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
