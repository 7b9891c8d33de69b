"""Producer settings: defaults, precedence, and one-line refusals of bad values."""

from __future__ import annotations

import argparse

import pytest

from common.settings import SettingsError
from ingest import settings as ps


def _parse(argv: list[str], env: dict[str, str] | None = None) -> ps.ProducerSettings:
    return ps.parse(argv, env or {})


def test_defaults() -> None:
    s = _parse([], {"PRODUCER_ID": "p1"})
    assert (s.results, s.interval_s, s.source, s.api_url) == (
        10,
        10.0,
        "auto",
        "https://randomuser.me/api/1.4/",
    )
    assert (s.nationalities, s.seed, s.rate, s.compression, s.producer_id) == ((), None, None, "lz4", "p1")
    assert s.backoff_base_s > 0 and s.backoff_max_s == 60
    assert s.spool_dir.name == "spool"


def test_flags_win_over_environment() -> None:
    env = {"PRODUCER_RESULTS": "50", "PRODUCER_NATIONALITIES": "gb, fr", "PRODUCER_SOURCE": "api"}
    s = _parse(["--results", "5000", "--source", "local", "--rate", "20000", "--seed", "abc"], env)
    assert (s.results, s.nationalities, s.source, s.rate, s.seed) == (
        5000,
        ("GB", "FR"),
        "local",
        20000.0,
        "abc",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--results", "5001"], "--results=5001 is outside 1..5000"),
        (["--results", "0"], "--results=0 is outside 1..5000"),
        (["--results", "ten"], "--results='ten' is not an integer"),
        (["--nat", "GB,XX"], "--nat='GB,XX' has unknown nationalities XX"),
        (["--source", "kafka"], "--source='kafka' must be one of api, local, auto"),
        (["--rate", "100"], "--rate needs the local source"),
        (["--api-url", "ftp://x"], "--api-url='ftp://x' is not an http(s) URL"),
        (["--interval", "0"], "--interval=0 is outside"),
        (["--backoff-base", "0"], "--backoff-base=0 is outside"),
        (["--backoff-base", "10", "--backoff-max", "5"], "backoff max 5 s is below the base 10 s"),
        (["--malformed-rate", "1.5"], "--malformed-rate=1.5 is outside 0..1"),
        (["--compression", "snappy"], "--compression='snappy' must be one of lz4, gzip, none"),
        (["--producer-id", "a b"], "--producer-id='a b' may only hold"),
    ],
)
def test_refusals_are_one_line(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        _parse(argv)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"PRODUCER_RESULTS=9999 is outside 1\.\.5000"):
        ps.from_sources({"PRODUCER_RESULTS": "9999"}, argparse.Namespace())


def test_every_option_has_a_flag_and_a_variable() -> None:
    parser = argparse.ArgumentParser()
    ps.add_arguments(parser)
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help"}
    assert flags == {f"--{name}" for name in ps.OPTIONS}
    assert all(env.startswith("PRODUCER_") for env, _, _ in ps.OPTIONS.values())
