"""Expected values written out independently of the job's code, shared by the test tiers."""

from __future__ import annotations

# The age bands of age_band_stats (docs/ARCHITECTURE.md), as a reader would compute them.
AGE_BANDS = ((17, "0-17"), (24, "18-24"), (34, "25-34"), (44, "35-44"), (54, "45-54"), (64, "55-64"))


def age_band(age: int) -> str:
    for upper, band in AGE_BANDS:
        if age <= upper:
            return band
    return "65+"
