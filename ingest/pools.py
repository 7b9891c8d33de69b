"""Value pools of the offline generator, derived from real API 1.4 responses.

The pools (names, streets, cities, states, titles, phone/id/postcode formats,
time zones, username words) are extracted once from the fixtures so that generated
users look like the live API's, then stored in `ingest/data/pools.json` so the
producer needs no fixture at run time. `python -m ingest.pools FIXTURES_DIR`
rebuilds the file; a unit test checks that the stored file is that build.

Formats are stored as templates: `#` is a random digit, `@` a random capital letter,
anything else is kept (so `(082) 3215-1629` becomes `(0##) ####-####`). Names keep
the transliteration the API put in the e-mail address, so non-Latin names get the
same kind of ASCII e-mail as the real service.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

POOLS_FILE = Path(__file__).resolve().parent / "data" / "pools.json"
from ingest.settings import NATIONALITIES  # noqa: E402

_ADJECTIVES = "angry beautiful big black blue brown crazy golden green happy heavy lazy orange organic purple red sad silver small ticklish tiny white yellow"  # noqa: E501
_ADJECTIVES_LIST = _ADJECTIVES.split()

# Names in their own script that the live service also returns for these
# nationalities (the fixtures' generator only does so for IR). Each entry is
# (name, transliteration used in the e-mail address).
_EXTRA_SCRIPT_NAMES: dict[str, dict[str, list[list[str]]]] = {
    "UA": {
        "male_first": [["Богдан", "bogdan"], ["Ярослав", "yaroslav"], ["Остап", "ostap"], ["Тарас", "taras"]],
        "female_first": [["Оксана", "oksana"], ["Мирослава", "miroslava"], ["Соломія", "solomiya"]],
        "last": [["Шевченко", "shevchenko"], ["Коваленко", "kovalenko"], ["Бондаренко", "bondarenko"]],
    },
    "RS": {
        "male_first": [["Милош", "milos"], ["Душан", "dusan"], ["Стефан", "stefan"], ["Лазар", "lazar"]],
        "female_first": [["Јелена", "jelena"], ["Милица", "milica"], ["Ана", "ana"]],
        "last": [["Јовановић", "jovanovic"], ["Петровић", "petrovic"], ["Николић", "nikolic"]],
    },
    "IN": {
        "male_first": [["आरव", "aarav"], ["विवान", "vivaan"], ["अर्जुन", "arjun"], ["ईशान", "ishaan"]],
        "female_first": [["अनन्या", "ananya"], ["दिया", "diya"], ["सान्वी", "saanvi"]],
        "last": [["शर्मा", "sharma"], ["वर्मा", "verma"], ["पटेल", "patel"]],
    },
}
# Nationalities whose lists overlap in the real generator (English-speaking
# countries; French-speaking Switzerland and France): they share name pools,
# which multiplies the variety the few fixture users give.
_SHARED_NAMES = (("AU", "CA", "GB", "IE", "NZ", "US"), ("CH", "FR"))
# Share of users of these nationalities whose names come from the pools above.
SCRIPT_NAME_SHARE = {"UA": 0.3, "RS": 0.3, "IN": 0.2}


def template(value: str) -> str:
    """`(082) 3215-1629` -> `(0##) ####-####`: digits and capitals become placeholders."""
    return re.sub(r"[A-Z]", "@", re.sub(r"[0-9]", "#", value)) if value else value


def _add(pool: list[Any], item: Any) -> None:
    if item not in pool:
        pool.append(item)


def build(fixtures_dir: Path) -> dict[str, Any]:
    """Pools per nationality from every `nat-XX.json` and `mixed-*.json` fixture."""
    users: list[dict[str, Any]] = []
    passwords: list[str] = []
    for path in sorted(fixtures_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("results"), list):
            users.extend(doc["results"])
    nats: dict[str, dict[str, Any]] = {}
    timezones: list[list[str]] = []
    words: dict[str, list[str]] = {"adjectives": [], "animals": []}
    for user in users:
        nat = user["nat"]
        pool = nats.setdefault(
            nat,
            {
                "country": user["location"]["country"],
                "male_first": [],
                "female_first": [],
                "last": [],
                "male_titles": [],
                "female_titles": [],
                "streets": [],
                "cities": [],
                "states": [],
                "phone": [],
                "cell": [],
                "id_name": user["id"]["name"],
                "id_value": [],
                "postcode": [],
            },
        )
        local = user["email"].split("@", 1)[0]
        first_t, _, last_t = local.partition(".")
        gender = user["gender"]
        _add(pool[f"{gender}_first"], [user["name"]["first"], first_t])
        _add(pool["last"], [user["name"]["last"], last_t])
        _add(pool[f"{gender}_titles"], user["name"]["title"])
        _add(pool["streets"], user["location"]["street"]["name"])
        _add(pool["cities"], user["location"]["city"])
        _add(pool["states"], user["location"]["state"])
        _add(pool["phone"], template(user["phone"]))
        _add(pool["cell"], template(user["cell"]))
        value = user["id"]["value"]
        _add(pool["id_value"], None if value is None else _id_template(value))
        postcode = user["location"]["postcode"]
        if isinstance(postcode, int):
            _add(pool["postcode"], "#" * len(str(postcode)))
        else:
            _add(pool["postcode"], "s:" + template(postcode))
        tz = user["location"]["timezone"]
        _add(timezones, [tz["offset"], tz["description"]])
        name = re.sub(r"[0-9]+$", "", user["login"]["username"])
        adjective = next((a for a in _ADJECTIVES_LIST if name.startswith(a)), None)
        if adjective is not None:
            _add(words["adjectives"], adjective)
            _add(words["animals"], name[len(adjective) :])
        _add(passwords, user["login"]["password"])
    for group in _SHARED_NAMES:
        for key in ("male_first", "female_first", "last"):
            merged: list[Any] = []
            for nat in group:
                for item in nats[nat][key]:
                    _add(merged, item)
            for nat in group:
                nats[nat][key] = list(merged)
    for nat, extra in _EXTRA_SCRIPT_NAMES.items():
        nats[nat]["script_names"] = extra
        nats[nat]["script_share"] = SCRIPT_NAME_SHARE[nat]
    missing = sorted(set(NATIONALITIES) - set(nats))
    if missing:
        raise ValueError(f"fixtures lack nationalities {missing}")
    for pool in nats.values():
        for values in pool.values():
            if isinstance(values, list):
                values.sort(key=lambda v: json.dumps(v, ensure_ascii=False))
    timezones.sort()
    return {
        "source": "RandomAPI Random User API 1.4 fixtures (see tests/conftest.py FIXTURES)",
        "nationalities": {nat: nats[nat] for nat in NATIONALITIES},
        "timezones": timezones,
        "username_adjectives": sorted(words["adjectives"]),
        "username_animals": sorted(words["animals"]),
        "passwords": sorted(passwords),
    }


def _id_template(value: str) -> str:
    # FI ids are a known API bug ("NaNNA958undefined"): keep its letters literally.
    if value.startswith("NaN") and value.endswith("undefined"):
        return re.sub(r"[0-9]", "#", value)
    return template(value)


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(POOLS_FILE.read_text(encoding="utf-8"))
    return data


def dumps(pools: dict[str, Any]) -> str:
    return json.dumps(pools, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild ingest/data/pools.json from API fixtures")
    parser.add_argument("fixtures_dir", type=Path)
    args = parser.parse_args(argv)
    POOLS_FILE.write_text(dumps(build(args.fixtures_dir)), encoding="utf-8")
    print(f"wrote {POOLS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
