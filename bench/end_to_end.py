"""The whole pipeline under load: freshness, sustained throughput, recovery and footprint.

One real job (scripts/spark-submit.sh jobs/stream_users.py, the full pipeline: bronze,
quality, silver, gold, every projection) runs for the whole benchmark; the real producer
(local source: varied, realistic users) drives it through phases:

  spec        10 users every 10 s (the specification's rate)
  rate_R      R users/s for --seconds, for each R of --rates
  recovery    a steady load, then SIGKILL of the whole job and a restart

Per phase: freshness = Cassandra's own write time of each `latest_users` row minus the
producer's fetch time stamped in it (`ingestion_time`), p50/p95/p99, from every row of the
phase (sampled windows at high rates); lag (users) from the job's checkpoint against Kafka
every 2 s, its growth over the second half of the phase, and the drain time after the
producer stops; users delivered; peak RSS and CPU of every process. Results go to
bench/results/end_to_end.json; nothing is asserted.

    .venv/bin/python -m bench.end_to_end [--rates 1000,5000,10000] [--seconds 180]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.harness import (
    DATABASE,
    KEYSPACE,
    ROOT,
    Job,
    Sampler,
    bench_env,
    generator_only,
    main_guard,
    percentiles,
    prepare_namespace,
    say,
    settings,
    start_producer,
    stop,
    sustained,
    write_result,
)
from common.clients import cassandra_cluster as build_cluster
from ingest import settings as ingest_settings
from ingest.envelope import make_batch, messages
from ingest.generator import LocalGenerator
from ops import lag as job_lag

UTC = dt.UTC
# Rates whose freshness the targets name: measured even after a lower rate was not sustained.
FRESHNESS_RATES = {5000}
# The speed gauge at the start of a run (harness.generator_only): seconds, users per call.
GAUGE_SECONDS, GAUGE_RESULTS = 5.0, 500
# A batch's line in the job's log (jobs.pipeline's report or the listener's progress).
BATCH_LINE = re.compile(r"\b(serving|lake) batch \d+:")


class Probe:
    """Lag of the job (from its checkpoint) and the delivered rows (from Cassandra and Mongo)."""

    def __init__(self, job: Job) -> None:
        self.s = settings()
        self.job = job
        self._cluster = build_cluster(self.s.cassandra, self.s.cassandra.admin)
        self.cql = self._cluster.connect(KEYSPACE)

    def close(self) -> None:
        self._cluster.shutdown()

    def lags(self) -> dict[str, int] | None:
        """Records not yet committed by each query; None until both have committed a batch."""
        totals = {}
        for query, checkpoint in self.job.checkpoints.items():
            try:
                report = job_lag.lag(self.s.kafka, checkpoint)
            except job_lag.CheckpointError:
                return None
            if report.batch_id is None:
                return None
            totals[query] = report.total
        return totals

    def lag_messages(self) -> int | None:
        """Records not yet committed by the slower of the two queries (all sinks)."""
        lags = self.lags()
        return None if lags is None else max(lags.values())

    def end_offsets(self) -> int:
        return sum(job_lag.end_offsets(self.s.kafka).values())

    def freshness(self, start: dt.datetime, end: dt.datetime, max_rows: int = 60_000) -> dict[str, Any]:
        """Fetch-to-visible latency of the latest_users rows fetched in [start, end)."""
        width = (end - start).total_seconds()
        count = self._count(start, end)
        windows: list[tuple[dt.datetime, dt.datetime]] = [(start, end)]
        if count > max_rows:  # 30 evenly spread windows, ~max_rows in all
            slice_s = width * max_rows / count / 30
            windows = [
                (
                    start + dt.timedelta(seconds=i * width / 30),
                    start + dt.timedelta(seconds=i * width / 30 + slice_s),
                )
                for i in range(30)
            ]
        latencies = []
        for lo, hi in windows:
            for day in _days(lo, hi):
                rows = self.cql.execute(
                    "SELECT ingestion_time, writetime(full_name) AS wt FROM latest_users "
                    "WHERE day = %s AND ingestion_time >= %s AND ingestion_time < %s",
                    (day, lo, hi),
                )
                for r in rows:
                    fetched = r.ingestion_time.replace(tzinfo=UTC).timestamp()
                    latencies.append(r.wt / 1e6 - fetched)
        return {"rows_in_phase": count, "rows_sampled": len(latencies), "latency_s": percentiles(latencies)}

    def _count(self, start: dt.datetime, end: dt.datetime) -> int:
        total = 0
        for day in _days(start, end):
            row = self.cql.execute(
                "SELECT count(*) AS n FROM latest_users"
                " WHERE day = %s AND ingestion_time >= %s AND ingestion_time < %s",
                (day, start, end),
                timeout=120,
            ).one()
            total += row.n
        return total

    def mongo_users(self) -> int:
        """Documents in the users collection (FerretDB counts by scanning: minutes at 1M+)."""
        client: MongoClient[dict[str, Any]]
        with MongoClient(self.s.mongo.uri(self.s.mongo.admin), socketTimeoutMS=None) as client:
            return int(client[DATABASE]["randomUserCollection"].estimated_document_count())


def _days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    days, day = [], start.date()
    while day <= end.date():
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (t, lag) in units per second; 0 with fewer than 3 points."""
    if len(points) < 3:
        return 0.0
    ts, ys = [p[0] for p in points], [p[1] for p in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den if den else 0.0


def wait_caught_up(probe: Probe, timeout: float, what: str, threshold: int = 0) -> float | None:
    """Seconds until the job's lag (messages) is at most `threshold`; None on timeout."""
    started = time.monotonic()
    last_print = 0.0
    while time.monotonic() - started < timeout:
        lag = probe.lag_messages()
        if lag is not None and lag <= threshold:
            return time.monotonic() - started
        if time.monotonic() - last_print >= 10:
            say(
                what,
                f"waiting for the job to catch up: lag {lag} messages, {time.monotonic() - started:.0f}s",
            )
            last_print = time.monotonic()
        time.sleep(1)
    return None


def users_per_record(results: int) -> float:
    """Users per Kafka record when the producer sends responses of `results` users: a response
    above PRODUCER_MAX_REQUEST_SIZE is split into parts (a 5,000-user one into ~1 MB records),
    so lag and production counted in records are converted with this, not with `results`."""
    producer = ingest_settings.parse([], bench_env())
    batch = make_batch(
        LocalGenerator(seed="bench-split").document(results), "local", "bench", 0, dt.datetime.now(UTC)
    )
    return results / len(messages(batch, producer.max_request_size))


def run_phase(
    name: str,
    probe: Probe,
    job: Job,
    workdir: Path,
    producer_args: list[str],
    seconds: float,
    users_per_message: float,
    rate: float,
    drain_timeout: float,
) -> dict[str, Any]:
    say(name, f"producing for {seconds:.0f}s: producer.py {' '.join(producer_args)}")
    offsets_before = probe.end_offsets()
    start = dt.datetime.now(UTC).replace(tzinfo=None)
    t0 = time.monotonic()
    lags: list[tuple[float, int]] = []
    with Sampler() as sampler:
        producer = start_producer(workdir, *producer_args)
        try:
            last_print = 0.0
            while (elapsed := time.monotonic() - t0) < seconds:
                lag = probe.lag_messages()
                if lag is not None:
                    lags.append((elapsed, round(lag * users_per_message)))
                if elapsed - last_print >= 15:
                    produced = round((probe.end_offsets() - offsets_before) * users_per_message)
                    say(
                        name,
                        f"{elapsed:5.0f}s  produced {produced:>9,} users  "
                        f"lag {lags[-1][1] if lags else '-':>9} users",
                    )
                    last_print = elapsed
                time.sleep(2)
        finally:
            stop(producer)
        end = dt.datetime.now(UTC).replace(tzinfo=None)
        produced = round((probe.end_offsets() - offsets_before) * users_per_message)
        drain_s = wait_caught_up(probe, drain_timeout, name)
    lag_at_stop = lags[-1][1] if lags else 0
    second_half = [p for p in lags if p[0] >= seconds / 2]
    growth = _slope(second_half)
    fresh = probe.freshness(start, end)
    result = {
        "rate_target_users_s": rate,
        "seconds": round((end - start).total_seconds(), 1),
        "users_produced": produced,
        "produced_users_s": round(produced / seconds, 1),
        "lag_users": {
            "max": max((p[1] for p in lags), default=None),
            "end_of_phase": lags[-1][1] if lags else None,
            "growth_second_half_users_s": round(growth, 1),
        },
        "drain_after_stop_s": None if drain_s is None else round(drain_s, 1),
        # how fast the job works through a backlog: its ceiling when the load exceeds it
        "drain_rate_users_s": round(lag_at_stop / drain_s) if drain_s and drain_s > 20 else None,
        "freshness": fresh,
        "delivered_in_cassandra_latest_users": fresh["rows_in_phase"],
        "footprint": sampler.summary(),
    }
    result["sustained"] = sustained(result)
    if rate < 10:  # the spec rate: also without the first half (the JVM's and the lake's warm-up)
        result["freshness_second_half"] = probe.freshness(start + (end - start) / 2, end)
    p = fresh["latency_s"]
    say(
        name,
        f"produced {produced:,} users ({produced / seconds:,.0f}/s), "
        f"in Cassandra {fresh['rows_in_phase']:,}; "
        f"freshness p50 {p['p50']} p95 {p['p95']} p99 {p['p99']} s; "
        f"lag growth {growth:,.0f} users/s; "
        f"drained in {drain_s if drain_s is None else round(drain_s)} s",
    )
    return result


def run_recovery(
    probe: Probe, job: Job, workdir: Path, rate: int, users_per_message: int, warm_s: float, timeout: float
) -> dict[str, Any]:
    """SIGKILL of the whole job under a steady load, then a restart: how long until its first
    batch, until the serving query is back to its normal lag (the dashboard is fresh again),
    and until both queries are (every sink)."""
    name = "recovery"
    say(name, f"steady load of {rate} users/s for {warm_s:.0f}s, then SIGKILL the job and restart it")
    producer = start_producer(workdir, "--rate", str(rate), "--results", str(users_per_message))
    try:
        t0 = time.monotonic()
        history: list[dict[str, int]] = []
        while time.monotonic() - t0 < warm_s:
            lags = probe.lags()
            if lags is not None:
                history.append(lags)
            time.sleep(1)
        # the lag of normal operation, each query's and the slower one's: p90 of the second half
        steady = {q: p90([h[q] for h in history[len(history) // 2 :]]) for q in ("serving", "lake")}
        threshold = p90([max(h.values()) for h in history[len(history) // 2 :]])
        say(name, f"steady lag p90 {threshold * users_per_message} users; SIGKILL")
        killed = time.monotonic()
        job.kill()
        job.start()
        first_batch_s = serving_s = caught_up_s = None
        seen = len(job.batch_lines())
        ran: set[str] = set()  # the queries that ended a batch since the restart
        last_print = -10.0
        while time.monotonic() - killed < timeout:
            now = time.monotonic() - killed
            ran |= queries_with_batches(job.batch_lines()[seen:])
            if first_batch_s is None and ran:
                first_batch_s = now
            lags = probe.lags()
            if lags is not None:
                # A query is back once it ran a batch in the new process and its lag is its
                # normal one: a lake not started yet (or slow to start) is not "caught up"
                # because its lag has not grown past its normal one yet.
                if serving_s is None and "serving" in ran and lags["serving"] <= steady["serving"]:
                    serving_s = now
                    say(name, f"{now:4.0f}s after the kill: the serving query is back to its normal lag")
                if caught_up_s is None and ran >= {"serving", "lake"} and max(lags.values()) <= threshold:
                    caught_up_s = now
                    say(name, f"{now:4.0f}s after the kill: both queries are back to their normal lag")
                if serving_s is not None and caught_up_s is not None:
                    break
            if now - last_print >= 10:
                say(name, f"{now:4.0f}s after the kill: lag {lags} messages")
                last_print = now
            time.sleep(1)
    finally:
        stop(producer)
    say(
        name,
        f"first batch {first_batch_s and round(first_batch_s)} s, serving caught up "
        f"{serving_s and round(serving_s)} s, all caught up {caught_up_s and round(caught_up_s)} s "
        "after SIGKILL",
    )
    return {
        "rate_users_s": rate,
        "steady_lag_p90_users": threshold * users_per_message,
        "steady_lag_p90_users_by_query": {q: v * users_per_message for q, v in steady.items()},
        "first_batch_after_kill_s": None if first_batch_s is None else round(first_batch_s, 1),
        "serving_caught_up_after_kill_s": None if serving_s is None else round(serving_s, 1),
        "caught_up_after_kill_s": None if caught_up_s is None else round(caught_up_s, 1),
    }


def queries_with_batches(lines: list[str]) -> set[str]:
    """The queries that ended a batch in these lines of the job's log."""
    return {m.group(1) for line in lines if (m := BATCH_LINE.search(line))}


def p90(values: list[int]) -> int:
    """The 90th percentile (nearest rank below) of the values; 0 for none."""
    ordered = sorted(values) or [0]
    return ordered[int(0.9 * (len(ordered) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates",
        default="1000,2000,5000,10000",
        help="users/s, ascending; after the first rate not sustained only 5000 (a target) still runs",
    )
    parser.add_argument("--seconds", type=float, default=120, help="length of each rate phase")
    parser.add_argument("--spec-seconds", type=float, default=120, help="length of the spec-rate phase")
    parser.add_argument("--results", type=int, default=100, help="users per message at the load rates")
    parser.add_argument("--recovery-rate", type=int, default=1000)
    parser.add_argument("--serving-trigger", default=None, help="SERVING_TRIGGER_INTERVAL (default: .env)")
    parser.add_argument("--lake-trigger", default=None, help="LAKE_TRIGGER_INTERVAL (default: .env)")
    parser.add_argument(
        "--job-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another setting of the job (.env.example), recorded in the results; repeatable",
    )
    parser.add_argument(
        "--big-rate", type=int, default=2000, help="users/s of the phase of 5,000-user messages"
    )
    parser.add_argument("--skip", default="", help="phases to skip: spec,rates,big,recovery,dashboard")
    parser.add_argument("--label", default="end_to_end", help="results file name")
    parser.add_argument(
        "--drain-timeout", type=float, default=600, help="longest wait for the job to catch up after a phase"
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    rates = [int(r) for r in args.rates.split(",") if r]

    say("setup", f"namespace {KEYSPACE} / {DATABASE}, emptied")
    prepare_namespace()
    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-", dir=ROOT / ".stack"))
    s = settings()
    starting = json.dumps({s.kafka.topic: {str(p): o for p, o in job_lag.end_offsets(s.kafka).items()}})
    extra = {"KAFKA_STARTING_OFFSETS": starting}
    if args.serving_trigger:
        extra["SERVING_TRIGGER_INTERVAL"] = args.serving_trigger
    if args.lake_trigger:
        extra["LAKE_TRIGGER_INTERVAL"] = args.lake_trigger
    for setting in args.job_env:
        key, sep, value = setting.partition("=")
        if not sep or not key.isupper():
            parser.error(f"--job-env {setting!r}: expected KEY=VALUE")
        extra[key] = value
    job = Job(workdir, extra)
    probe = Probe(job)
    dashboard = None
    results: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items()},
        "job_env": {k: v for k, v in extra.items() if k != "KAFKA_STARTING_OFFSETS"},
        "phases": {},
        "phases_skipped": [],
    }
    # The machine's speed, before anything of the run loads it: figures from hosts of
    # different speed are told apart by it (docs/PERFORMANCE.md).
    gauge = generator_only(GAUGE_SECONDS, GAUGE_RESULTS)
    results["speed_gauge"] = {
        "generator_users_s": round(gauge),
        "seconds": GAUGE_SECONDS,
        "results_per_call": GAUGE_RESULTS,
    }
    say("setup", f"speed gauge: the producer's generator alone made {gauge:,.0f} users/s")
    try:
        job.start()
        say("setup", f"started the job (log {job.log})")
        warm = start_producer(workdir, "--results", "10", "--max-batches", "1")
        warm.wait(timeout=120)
        if wait_caught_up(probe, 300, "setup") is None:
            raise SystemExit(f"the job did not process the warm-up batch in 300 s; see {job.log}")
        if "dashboard" not in skip:
            dashboard = subprocess.Popen(
                [str(ROOT / ".venv/bin/python"), "-m", "bench.dashboard_load", "--seconds", "86400"],
                cwd=ROOT,
                env=bench_env(),
                stdout=(workdir / "dashboard.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if "spec" not in skip:
            results["phases"]["spec"] = run_phase(
                "spec",
                probe,
                job,
                workdir,
                ["--results", "10", "--interval", "10"],
                args.spec_seconds,
                10,
                1.0,
                300,
            )
        if "rates" not in skip:
            failed_at = None
            for rate in rates:
                if failed_at is not None and rate not in FRESHNESS_RATES:
                    say(f"rate_{rate}", f"skipped: {failed_at} users/s was already not sustained")
                    results["phases_skipped"].append(rate)
                    continue
                phase = run_phase(
                    f"rate_{rate}",
                    probe,
                    job,
                    workdir,
                    ["--rate", str(rate), "--results", str(args.results)],
                    args.seconds,
                    args.results,
                    rate,
                    args.drain_timeout,
                )
                results["phases"][f"rate_{rate}"] = phase
                write_result(args.label + ".partial", results)
                if not phase["sustained"] and failed_at is None:
                    failed_at = rate
        if "big" not in skip:
            # The API's largest response (split by the producer into ~1 MB records) at default
            # settings: it must go through with the driver's heap bounded.
            results["phases"]["messages_5000"] = run_phase(
                "messages_5000",
                probe,
                job,
                workdir,
                ["--rate", str(args.big_rate), "--results", "5000"],
                args.seconds,
                users_per_record(5000),
                args.big_rate,
                args.drain_timeout,
            )
            write_result(args.label + ".partial", results)
        if "recovery" not in skip:
            results["recovery"] = run_recovery(probe, job, workdir, args.recovery_rate, args.results, 90, 600)
        results["batch_log"] = job.batch_lines()[-400:]
        say("setup", "counting the Mongo documents (FerretDB scans the collection)")
        results["mongo_documents"] = probe.mongo_users()
    finally:
        if dashboard is not None:
            stop(dashboard)
        job.kill(15)
        probe.close()
        write_result(args.label, results)
    return 0


if __name__ == "__main__":
    main_guard(main)
