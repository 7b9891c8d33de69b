"""The right to erasure, pure parts: the ledger's subject keys, the filter, the bronze rewrite.

The erasure ledger (a Delta table, LEDGER_TABLE) records every request by a keyed HMAC of
the person's user id, never the id itself, so the ledger holds no personal data yet every
replay (from bronze or from Kafka) can drop erased people with `without_erased`. The
command that uses these parts is jobs/erase.py; docs/GOVERNANCE.md has the procedure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from jobs.core.pseudonymise import hmac_sha256_hex_col, normalise_email

LEDGER_TABLE = "erasure_ledger"
# Append-only: a request is written as `requested` before anything is removed, and again
# as `done` when every store is clean; a subject is erased as soon as it has any row.
LEDGER_SCHEMA = StructType(
    [
        StructField("request_id", StringType(), False),
        StructField("subject_key", StringType(), False),
        StructField("key_version", StringType(), False),
        StructField("requested_at", TimestampType(), False),
        StructField("status", StringType(), False),
        StructField("recorded_at", TimestampType(), False),
    ]
)
REQUESTED, DONE = "requested", "done"
# A subject key is distinguishable from a contact pseudonym ("v1:...") by its prefix.
_SUBJECT_PREFIX = "subject:"


def subject_key(user_id: str, key: bytes) -> str:
    """Keyed HMAC-SHA256 (hex) of the user id: what the ledger stores instead of the id."""
    return hmac.new(key, (_SUBJECT_PREFIX + user_id).encode("utf-8"), hashlib.sha256).hexdigest()


def subject_key_col(user_id: Column, key: bytes) -> Column:
    """Spark twin of subject_key (no Python UDF: Spark's own sha2 via hmac_sha256_hex_col)."""
    return hmac_sha256_hex_col(F.concat(F.lit(_SUBJECT_PREFIX), user_id), key)


def without_erased(users: DataFrame, ledger: DataFrame | None, key: bytes) -> DataFrame:
    """Users minus every person the ledger holds (any status: a pending request counts).

    `users` needs a `user_id` column; rows with a null user id are kept (they are not a
    person the ledger can name; quality rules quarantine them).
    """
    if ledger is None:
        return users
    erased = ledger.select(F.col("subject_key").alias("_erased_key")).distinct()
    keyed = users.withColumn("_subject_key", subject_key_col(F.col("user_id"), key))
    return keyed.join(F.broadcast(erased), keyed["_subject_key"] == erased["_erased_key"], "left_anti").drop(
        "_subject_key"
    )


@dataclass(frozen=True)
class Rewrite:
    """What to do with one bronze record that mentions the person."""

    action: str  # "keep" | "rewrite" | "delete"
    value: bytes | None = None
    removed: int = 0


def _mentions(user: object, user_ids: frozenset[str], email: str | None) -> bool:
    if not isinstance(user, dict):
        return False
    login = user.get("login")
    if isinstance(login, dict) and login.get("uuid") in user_ids:
        return True
    raw_email = user.get("email")
    return email is not None and isinstance(raw_email, str) and normalise_email(raw_email) == email


def rewrite_record(value: bytes | None, user_ids: frozenset[str], email: str | None = None) -> Rewrite:
    """A bronze value without the person: their users removed from `results`.

    Bronze holds whole API responses (one Kafka record = N users). The record is rewritten
    without the person's users and deleted entirely when nothing else is left, or when it
    mentions the person but cannot be parsed (the person cannot be cut out of text we cannot
    read). `meta` and the API's `info` stay as fetched (the job checks neither against the
    users' number: a split message's info already counts the whole response); the users after
    the removed one move up one `position`, which is lineage, not a key.
    `email` is a normalised address (pseudonymise.normalise_email).
    """
    if value is None:
        return Rewrite("keep")
    text = value.decode("utf-8", errors="replace")
    if not any(uid in text for uid in user_ids) and not (email and email in text.lower()):
        return Rewrite("keep")
    try:
        document = json.loads(text)
    except ValueError:
        return Rewrite("delete")
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list):
        return Rewrite("delete")
    kept = [u for u in results if not _mentions(u, user_ids, email)]
    removed = len(results) - len(kept)
    if not kept:
        return Rewrite("delete", removed=removed)
    if removed == 0:
        # Mentioned outside a user of `results` (e.g. in the envelope): cannot be cut out.
        return Rewrite("delete")
    document["results"] = kept
    return Rewrite(
        "rewrite", json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), removed
    )
