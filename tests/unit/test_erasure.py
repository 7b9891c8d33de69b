"""Pure parts of the right to erasure: subject keys, the ledger filter, the bronze rewrite."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import erase
from jobs.core import erasure
from tests.unit.frames import assert_same_frame

KEY = bytes(range(32))
ALICE, BOB, CAROL = (
    "0b1f6f1e-0000-4000-8000-00000000a11c",
    "0b1f6f1e-0000-4000-8000-000000000b0b",
    "0b1f6f1e-0000-4000-8000-0000000ca201",
)


def _user(uid: str | None, email: str = "x@example.com") -> dict[str, object]:
    login: dict[str, object] = {"uuid": uid, "username": "u"} if uid else {"username": "u"}
    return {"login": login, "email": email, "name": {"first": "A", "last": "B"}}


def _message(*users: dict[str, object]) -> bytes:
    doc = {
        "meta": {"batch_id": "b1", "first_index": 0},
        "info": {"results": len(users)},
        "results": list(users),
    }
    return json.dumps(doc).encode()


def test_subject_key_is_a_keyed_hmac_of_the_user_id_and_never_the_id() -> None:
    want = hmac.new(KEY, f"subject:{ALICE}".encode(), hashlib.sha256).hexdigest()
    assert erasure.subject_key(ALICE, KEY) == want
    assert ALICE not in want and erasure.subject_key(ALICE, b"another key 0123") != want


def test_spark_subject_key_equals_python(spark: SparkSession) -> None:
    ids = [ALICE, BOB, "Zoë-🙂", ""]
    df = spark.createDataFrame([(i,) for i in ids], "user_id string")
    got = {
        r.user_id: r.k
        for r in df.select("user_id", erasure.subject_key_col(F.col("user_id"), KEY).alias("k")).collect()
    }
    assert got == {i: erasure.subject_key(i, KEY) for i in ids}


def test_without_erased_drops_exactly_the_ledger_subjects(spark: SparkSession) -> None:
    users = spark.createDataFrame(
        [(ALICE, "FR"), (BOB, "US"), (CAROL, "DE"), (None, "XX")], "user_id string, country string"
    )
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ledger = spark.createDataFrame(
        [
            ("r1", erasure.subject_key(ALICE, KEY), "1", now, erasure.REQUESTED, now),
            ("r1", erasure.subject_key(ALICE, KEY), "1", now, erasure.DONE, now),
            ("r2", erasure.subject_key(CAROL, KEY), "1", now, erasure.REQUESTED, now),  # pending counts
        ],
        erasure.LEDGER_SCHEMA,
    )
    kept = erasure.without_erased(users, ledger, KEY)
    assert kept.columns == users.columns
    assert_same_frame(kept, users.where(f"user_id = '{BOB}' OR user_id IS NULL"))
    assert erasure.without_erased(users, None, KEY) is users


def test_rewrite_removes_only_the_person_and_keeps_the_rest_byte_for_byte_equal_as_json() -> None:
    value = _message(_user(ALICE), _user(BOB))
    out = erasure.rewrite_record(value, frozenset({ALICE}))
    assert out.action == "rewrite" and out.removed == 1 and out.value is not None
    doc = json.loads(out.value)
    assert doc == {**json.loads(value), "results": [_user(BOB)]}
    assert ALICE.encode() not in out.value


def test_rewrite_deletes_a_record_with_only_the_person_or_that_cannot_be_parsed() -> None:
    assert erasure.rewrite_record(
        _message(_user(ALICE), _user(ALICE)), frozenset({ALICE})
    ) == erasure.Rewrite("delete", None, 2)
    assert erasure.rewrite_record(f"not json {ALICE}".encode(), frozenset({ALICE})) == erasure.Rewrite(
        "delete"
    )
    # Named outside `results` (here in the envelope): cannot be cut out.
    odd = json.dumps({"meta": {"note": ALICE}, "results": [_user(BOB)]}).encode()
    assert erasure.rewrite_record(odd, frozenset({ALICE})) == erasure.Rewrite("delete")


def test_rewrite_keeps_records_without_the_person_and_matches_by_email() -> None:
    value = _message(_user(BOB), _user(CAROL))
    assert erasure.rewrite_record(value, frozenset({ALICE})) == erasure.Rewrite("keep")
    assert erasure.rewrite_record(None, frozenset({ALICE})) == erasure.Rewrite("keep")
    # A user without uuid (quarantined) is found by the normalised email.
    by_mail = _message(_user(None, " Alice.A@Example.COM "), _user(BOB))
    out = erasure.rewrite_record(by_mail, frozenset(), "alice.a@example.com")
    assert out.action == "rewrite" and json.loads(out.value or b"")["results"] == [_user(BOB)]


def test_a_user_id_is_taken_in_any_case_and_stored_as_every_store_holds_it() -> None:
    """Every store holds lower-case ids (the quality rules quarantine others): the CLI lowers
    what it is given, or an upper-case id would erase nothing and block nothing."""
    assert erase.parse_args(["--user-id", f" {ALICE.upper()} "]).user_id == ALICE
    assert erase.parse_args(["--user-id", ALICE]).user_id == ALICE
    assert erase.parse_args(["--email", "A@Example.com"]).user_id is None
    for bad in ("not-a-uuid", f"{ALICE}x", ""):
        with pytest.raises(SystemExit) as exc:
            erase.parse_args(["--user-id", bad])
        assert exc.value.code == 2
