"""DataFrame assertions: pyspark.testing's, made exact.

pyspark 3.5's assertDataFrameEqual compares rows in any order and prints a diff of the rows
that differ, but it compares floats within a tolerance (rtol 1e-5) and an expected Row with
an actual one by position, over the shorter of the two. So here floats must be equal, and
rows written out as dicts must name exactly the DataFrame's columns, in its order.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from pyspark.sql import DataFrame, Row

# pyspark.testing imports pyspark.pandas, which warns without it, and about its own use of
# distutils' LooseVersion.
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

__all__ = ["assertDataFrameEqual", "assertSchemaEqual", "assert_rows", "assert_same_frame"]


def assert_same_frame(actual: DataFrame, expected: DataFrame) -> None:
    """The same schema (nullability aside) and the same rows in any order, floats exactly."""
    assertDataFrameEqual(actual, expected, rtol=0, atol=0)


def assert_rows(actual: DataFrame, expected: list[dict[str, Any]]) -> None:
    """`actual` holds exactly these rows, in any order: the same columns, values exactly equal.

    A struct column's value is written as a Row, a map's as a dict (as collect() returns them).
    """
    for row in expected:
        assert list(row) == actual.columns, (
            f"expected columns {list(row)}, the DataFrame has {actual.columns}"
        )
    assertDataFrameEqual(actual, [Row(**row) for row in expected], rtol=0, atol=0)
