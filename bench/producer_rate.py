"""How many users a second the producer's load mode sustains on this machine.

Prints figures and writes bench/results/producer.json; asserts nothing (speed is measured
here, never in tests):
  1. the local generator alone (API 1.4 documents, credentials included);
  2. generate + identity + credential removal + message encoding (no Kafka);
  3. generate + publish to the real Kafka, counting only users Kafka CONFIRMED
     (acks=all, idempotent, lz4), through the producer's own Runner/Publisher.
Kafka figures use the topic `random_user_data_bench` (created with the
platform's ACLs), so demo data stays clean.

    .venv/bin/python bench/producer_rate.py [--seconds 10] [--results 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("KAFKA_TOPIC", "random_user_data_bench")

from bench.harness import generator_only, write_result
from common.settings import load
from ingest.envelope import make_batch, messages
from ingest.generator import LocalGenerator
from ingest.runner import Runner
from ingest.settings import from_sources
from ops import kafka_admin


def generate_and_encode(seconds: float, results: int) -> tuple[float, float]:
    generator = LocalGenerator(seed="bench")
    users, size, seq, started = 0, 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = make_batch(generator.document(results), "local", "bench", seq, datetime.now(UTC))
        size += sum(len(m.value) for m in messages(batch, 1_048_576))
        users += batch.users
        seq += 1
    return users / (time.perf_counter() - started), size / users


def generate_and_publish(seconds: float, results: int, compression: str) -> tuple[float, float, int]:
    settings = load()
    kafka_admin.setup(settings.kafka)
    with tempfile.TemporaryDirectory() as spool:
        env = {
            "PRODUCER_SOURCE": "local",
            "PRODUCER_RATE": "10000000",  # unthrottled: Kafka and the CPU set the pace
            "PRODUCER_RESULTS": str(results),
            "PRODUCER_SPOOL_DIR": spool,
            "PRODUCER_ID": "bench",
            "PRODUCER_METRICS_PORT": "0",
            "PRODUCER_COMPRESSION": compression,
            "PRODUCER_MEMORY_BOUND": "16",
        }
        runner = Runner(from_sources(env), settings.kafka)
        thread = threading.Thread(target=runner.run)
        thread.start()
        time.sleep(2)  # warm-up: connection, metadata
        metrics = runner.metrics
        first = metrics.users_published._value.get()
        started = time.perf_counter()
        time.sleep(seconds)
        confirmed = metrics.users_published._value.get() - first
        elapsed = time.perf_counter() - started
        runner.stop.set()
        thread.join()
        return (
            confirmed / elapsed,
            metrics.bytes_published._value.get(),
            int(metrics.batches_spooled._value.get()),
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--results", type=int, default=500)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument(
        "--label",
        default="producer",
        help="results file name (bench/results/LABEL.json); the generator alone is also a gauge "
        "of the machine's speed at the time, which drifts here",
    )
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()} results/batch={args.results} window={args.seconds:g}s")
    figures: dict[str, float] = {}
    figures["generator_users_s"] = round(generator_only(args.seconds, args.results))
    print(f"generator alone:          {figures['generator_users_s']:>10,.0f} users/s")
    rate, per_user = generate_and_encode(args.seconds, args.results)
    figures["generate_encode_users_s"], figures["bytes_per_user"] = round(rate), round(per_user)
    print(f"generate+envelope+encode: {rate:>10,.0f} users/s ({per_user:,.0f} bytes/user on the wire)")
    if not args.skip_kafka:
        for compression in ("lz4", "gzip"):
            rate, _size, spooled = generate_and_publish(args.seconds, args.results, compression)
            figures[f"publish_{compression}_users_s"] = round(rate)
            print(
                f"generate+publish ({compression:>4}):  {rate:>10,.0f} users/s confirmed by Kafka "
                f"(spooled {spooled})"
            )
    write_result(args.label, {"window_s": args.seconds, "users_per_message": args.results, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
