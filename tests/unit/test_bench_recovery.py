"""The recovery phase of `make bench` tells which query ended a batch after the restart
(bench.end_to_end.queries_with_batches), from the job's own log lines."""

from __future__ import annotations

from bench.end_to_end import queries_with_batches

LOG = [
    "2026-12-01 07:32:47,763 INFO jobs.stream_users: the lake query starts once the serving query caught up",
    "2026-12-01 07:32:57,489 INFO jobs.pipeline: serving batch 0: ms[mongo_users=4009 total=5140]",
    "2026-12-01 07:32:57,850 INFO jobs.listener: progress serving batch 0: 1 rows, trigger 7823 ms",
    "2026-12-01 07:33:27,888 INFO jobs.stream_users: started query lake (app id lake-1, trigger 2 seconds)",
]


def test_only_the_queries_that_ended_a_batch() -> None:
    assert queries_with_batches(LOG) == {"serving"}
    lake = "2026-12-01 07:33:23,308 INFO jobs.pipeline: lake batch 12: records=1 users=10 ms[total=24907]"
    assert queries_with_batches([*LOG, lake]) == {"serving", "lake"}
    assert queries_with_batches([]) == set()
