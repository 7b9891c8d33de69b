"""Offline source: new users in the exact document shape of Random User API 1.4.

The live API is not reachable from every machine (nor fast enough for load
tests), so the producer can generate responses itself. Every field of API 1.4 is
present, with its per-nationality quirks: `location.postcode` a number for most
nationalities and a string for CA, GB and NO; `id.value` null for IR, NZ, TR and
UA (and the API's own `NaNNA###undefined` for FI); names in Persian script for IR
and partly in Cyrillic/Devanagari for UA, RS and IN; coordinates as strings; ages
counted on the fetch day. Pools come from real responses (`ingest.pools`); every
user is new (fresh uuid, numbers, dates), never a re-sent fixture.

Speed matters (the load mode needs tens of thousands of users a second on two
cores): pools are precompiled once, formats become `%`-format strings, and all
randomness comes from one seeded `random.Random`, so a seed reproduces a run.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ingest import pools as pools_module

log = logging.getLogger(__name__)

API_VERSION = "1.4"
YEAR_MS = 365.2425 * 86_400_000
_EPOCH_DATE = date(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH_DATE.toordinal()
_PORTRAITS = "https://randomuser.me/api/portraits/"
_SALT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_CAPITALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Defects the quality-test mode can inject, each a way real feeds go wrong.
DEFECTS = (
    "missing_uuid",
    "bad_email",
    "age_out_of_range",
    "empty_country",
    "unknown_nat",
    "bad_dob_date",
)

Filler = Callable[[], str]


def _compile(template: str, rnd: Callable[[], float]) -> Filler:
    """`(0##) ####-####` -> a function returning e.g. `(082) 3215-1629`."""
    fmt: list[str] = []
    parts: list[tuple[str, int]] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "#":
            j = i
            while j < len(template) and template[j] == "#":
                j += 1
            fmt.append(f"%0{j - i}d")
            parts.append(("d", 10 ** (j - i)))
            i = j
        elif ch == "@":
            fmt.append("%s")
            parts.append(("L", 0))
            i += 1
        else:
            fmt.append(ch.replace("%", "%%"))
            i += 1
    pattern = "".join(fmt)
    if not parts:
        return lambda: pattern
    if all(kind == "d" for kind, _ in parts):
        sizes = [size for _, size in parts]
        if len(sizes) == 1:
            size = sizes[0]
            return lambda: pattern % int(rnd() * size)
        return lambda: pattern % tuple(int(rnd() * s) for s in sizes)

    def fill() -> str:
        values: list[object] = []
        for kind, size in parts:
            values.append(int(rnd() * size) if kind == "d" else _CAPITALS[int(rnd() * 26)])
        return pattern % tuple(values)

    return fill


def _number_filler(low: int, span: int, rnd: Callable[[], float]) -> Filler:
    return lambda: str(low + int(rnd() * span))


class _Nat:
    """One nationality's pools, ready for fast drawing."""

    def __init__(self, code: str, pool: dict[str, Any], rnd: Callable[[], float]) -> None:
        self.code = code
        self.country: str = pool["country"]

        def names(items: list[list[str]]) -> list[tuple[str, str]]:
            return [(name, translit.replace(" ", "").lower()) for name, translit in items]

        self.first = {"male": names(pool["male_first"]), "female": names(pool["female_first"])}
        self.last = names(pool["last"])
        script = pool.get("script_names")
        self.script_share: float = pool.get("script_share", 0.0)
        self.script_first = (
            {"male": names(script["male_first"]), "female": names(script["female_first"])} if script else {}
        )
        self.script_last = names(script["last"]) if script else []
        self.titles = {"male": pool["male_titles"], "female": pool["female_titles"]}
        self.streets: list[str] = pool["streets"]
        self.cities: list[str] = pool["cities"]
        self.states: list[str] = pool["states"]
        self.phones = [_compile(t, rnd) for t in pool["phone"]]
        self.cells = [_compile(t, rnd) for t in pool["cell"]]
        self.id_name: str = pool["id_name"]
        self.id_values: list[Filler | None] = [
            None if t is None else _compile(t, rnd) for t in pool["id_value"]
        ]
        self.postcodes: list[tuple[bool, Filler]] = []
        for spec in pool["postcode"]:
            if spec.startswith("s:"):
                self.postcodes.append((False, _compile(spec[2:], rnd)))
            else:
                low = 10 ** (len(spec) - 1)
                span = 10 ** len(spec) - low
                self.postcodes.append((True, _number_filler(low, span, rnd)))


class LocalGenerator:
    """Random User API 1.4 responses made locally, deterministic from a seed."""

    def __init__(
        self,
        seed: str | None = None,
        nationalities: Sequence[str] = (),
        malformed_rate: float = 0.0,
        pools: dict[str, Any] | None = None,
    ) -> None:
        if not 0.0 <= malformed_rate <= 1.0:
            raise ValueError(f"malformed_rate={malformed_rate} is outside 0..1")
        data = pools if pools is not None else pools_module.load()
        self.seed = seed if seed is not None else secrets.token_hex(8)
        self._rng = random.Random(self.seed)  # noqa: S311 (test data, reproducible by design)
        self._rnd = self._rng.random
        codes = list(nationalities) or list(data["nationalities"])
        unknown = sorted(set(codes) - set(data["nationalities"]))
        if unknown:
            raise ValueError(f"unknown nationalities {unknown}")
        self._nats = [_Nat(code, data["nationalities"][code], self._rnd) for code in codes]
        # Shared read-only sub-documents: nothing downstream mutates them, and
        # building them once per user was a measurable share of the load mode.
        self._timezones = [{"offset": o, "description": d} for o, d in data["timezones"]]
        self._pictures = {
            gender: [
                {
                    "large": f"{_PORTRAITS}{folder}/{i}.jpg",
                    "medium": f"{_PORTRAITS}med/{folder}/{i}.jpg",
                    "thumbnail": f"{_PORTRAITS}thumb/{folder}/{i}.jpg",
                }
                for i in range(count)
            ]
            for gender, folder, count in (("male", "men", 100), ("female", "women", 97))
        }
        self._adjectives: list[str] = data["username_adjectives"]
        self._animals: list[str] = data["username_animals"]
        self._passwords: list[str] = data["passwords"]
        self.malformed_rate = malformed_rate
        self.defects: Counter[str] = Counter()
        self.page = 0
        self._days: dict[int, tuple[str, int, int, int]] = {}

    def document(self, results: int, now: datetime | None = None) -> dict[str, Any]:
        """One API response: `{"results": [...], "info": {seed, results, page, version}}`."""
        if not 1 <= results <= 5000:
            raise ValueError(f"results={results} is outside 1..5000")
        now = now or datetime.now(UTC)
        self.page += 1
        now_ms = int(now.timestamp() * 1000)
        now_key = (now.year, now.month, now.day, now.hour, now.minute, now.second)
        users = [self._user(now_ms, now_key) for _ in range(results)]
        return {
            "results": users,
            "info": {"seed": self.seed, "results": results, "page": self.page, "version": API_VERSION},
        }

    def _date(self, ms: int, now_key: tuple[int, ...]) -> tuple[str, int, tuple[int, int, int]]:
        """ISO date with ms, full years until the fetch time, and (year, month, day)."""
        day, in_day = divmod(ms, 86_400_000)
        cached = self._days.get(day)
        if cached is None:
            d = _EPOCH_DATE.fromordinal(_EPOCH_ORDINAL + day)
            cached = self._days[day] = ("%04d-%02d-%02dT" % (d.year, d.month, d.day), d.year, d.month, d.day)  # noqa: UP031
        prefix, year, month, mday = cached
        hour, rest = divmod(in_day, 3_600_000)
        minute, rest = divmod(rest, 60_000)
        second, milli = divmod(rest, 1000)
        age = now_key[0] - year
        if (month, mday, hour, minute, second) > now_key[1:]:
            age -= 1
        return prefix + "%02d:%02d:%02d.%03dZ" % (hour, minute, second, milli), age, (year, month, mday)  # noqa: UP031

    def _user(self, now_ms: int, now_key: tuple[int, ...]) -> dict[str, Any]:
        rnd = self._rnd
        nat = self._nats[int(rnd() * len(self._nats))]
        gender = "male" if rnd() < 0.5 else "female"
        if nat.script_share and rnd() < nat.script_share:
            firsts, lasts = nat.script_first[gender], nat.script_last
        else:
            firsts, lasts = nat.first[gender], nat.last
        first, first_t = firsts[int(rnd() * len(firsts))]
        last, last_t = lasts[int(rnd() * len(lasts))]
        titles = nat.titles[gender]
        numeric, postcode_fill = nat.postcodes[int(rnd() * len(nat.postcodes))]
        postcode: int | str = int(postcode_fill()) if numeric else postcode_fill()

        bits = self._rng.getrandbits(128)
        bits = (bits & ~(0xF << 76) | (4 << 76)) & ~(0x3 << 62) | (0x2 << 62)
        h = "%032x" % bits  # noqa: UP031
        password = self._passwords[int(rnd() * len(self._passwords))]
        salt = "".join(self._rng.choices(_SALT_CHARS, k=8))
        secret = (password + salt).encode()

        dob_ms = now_ms - int((21 + rnd() * 61) * YEAR_MS)
        dob_date, dob_age, dob_t = self._date(dob_ms, now_key)
        reg_date, reg_age, _ = self._date(now_ms - int((1 + rnd() * 23) * YEAR_MS), now_key)

        id_fill = nat.id_values[int(rnd() * len(nat.id_values))]
        id_value = None if id_fill is None else id_fill()
        if nat.code in ("DK", "NO", "DE"):
            # Their ids begin with the birth date (DDMMYY), as the API makes them.
            ddmmyy = "%02d%02d%02d" % (dob_t[2], dob_t[1], dob_t[0] % 100)  # noqa: UP031
            if nat.code == "DK":
                id_value = "%s-%04d" % (ddmmyy, int(rnd() * 10_000))  # noqa: UP031
            elif nat.code == "NO":
                id_value = "%s%05d" % (ddmmyy, int(rnd() * 100_000))  # noqa: UP031
            else:
                initial = (last_t[:1] or "x").upper()
                id_value = "%02d %s %s %03d" % (int(rnd() * 100), ddmmyy, initial, int(rnd() * 1000))  # noqa: UP031

        user: dict[str, Any] = {
            "gender": gender,
            "name": {"title": titles[int(rnd() * len(titles))], "first": first, "last": last},
            "location": {
                "street": {
                    "number": 1 + int(rnd() * 9999),
                    "name": nat.streets[int(rnd() * len(nat.streets))],
                },
                "city": nat.cities[int(rnd() * len(nat.cities))],
                "state": nat.states[int(rnd() * len(nat.states))],
                "country": nat.country,
                "postcode": postcode,
                "coordinates": {
                    "latitude": "%.4f" % (rnd() * 180 - 90),
                    "longitude": "%.4f" % (rnd() * 360 - 180),
                },
                "timezone": self._timezones[int(rnd() * len(self._timezones))],
            },
            "email": f"{first_t}.{last_t}@example.com",
            "login": {
                "uuid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                "username": self._adjectives[int(rnd() * len(self._adjectives))]
                + self._animals[int(rnd() * len(self._animals))]
                + str(100 + int(rnd() * 900)),
                "password": password,
                "salt": salt,
                "md5": hashlib.md5(secret, usedforsecurity=False).hexdigest(),
                "sha1": hashlib.sha1(secret, usedforsecurity=False).hexdigest(),
                "sha256": hashlib.sha256(secret).hexdigest(),
            },
            "dob": {"date": dob_date, "age": dob_age},
            "registered": {"date": reg_date, "age": reg_age},
            "phone": nat.phones[int(rnd() * len(nat.phones))](),
            "cell": nat.cells[int(rnd() * len(nat.cells))](),
            "id": {"name": nat.id_name, "value": id_value},
            "picture": self._pictures[gender][int(rnd() * len(self._pictures[gender]))],
            "nat": nat.code,
        }
        if self.malformed_rate and rnd() < self.malformed_rate:
            self._break(user)
        return user

    def _break(self, user: dict[str, Any]) -> None:
        defect = DEFECTS[int(self._rnd() * len(DEFECTS))]
        self.defects[defect] += 1
        if defect == "missing_uuid":
            del user["login"]["uuid"]
        elif defect == "bad_email":
            user["email"] = user["email"].replace("@", "")
        elif defect == "age_out_of_range":
            user["dob"]["age"] = 150 + int(self._rnd() * 100)
        elif defect == "empty_country":
            user["location"]["country"] = ""
        elif defect == "unknown_nat":
            user["nat"] = "XX"
        else:
            user["dob"]["date"] = "not-a-date"
