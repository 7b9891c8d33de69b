"""Random User API -> Kafka: the long-running producer (see docs/PRODUCER.md).

Thin entry point: options, logging, signals. The work lives in `ingest/`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from common import envfile, stopping
from common.settings import SettingsError
from common.settings import from_mapping as load_settings
from ingest import settings as producer_settings
from ingest.runner import Runner

log = logging.getLogger("producer")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="producer.py",
        description="Publish Random User API responses (or locally generated ones) to Kafka.",
    )
    producer_settings.add_arguments(parser)
    parser.add_argument("--log-level", default=None, help="[PRODUCER_LOG_LEVEL, default INFO]")
    args = parser.parse_args(argv)
    try:
        env = envfile.load(envfile.PROJECT_ROOT)
        common = load_settings(env)
        level = args.log_level or producer_settings.ProducerEnv.from_env(env).log_level
        settings = producer_settings.from_sources(env, args)
    except SettingsError as exc:
        print(f"producer.py: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # Said on every connection to the local SASL_PLAINTEXT listener (127.0.0.1 only);
    # a remote cluster is configured with SASL_SSL (KAFKA_SECURITY_PROTOCOL).
    logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)

    stop = stopping.Stop()

    def exit_now(signum: int) -> None:
        log.warning("second %s: exiting without waiting for Kafka", signal.Signals(signum).name)
        os._exit(130)

    stopping.install(stop, log, on_repeat=exit_now)
    runner = Runner(settings, common.kafka, stop)
    runner.metrics.serve(settings.metrics_port, common.stack.bind_host)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
