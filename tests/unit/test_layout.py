"""The layout holds: the dashboard loads without Spark, and the packages import one way only."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT


def _top_level_imports(path: str) -> list[str]:
    """The project modules a file imports at its top level (the dashboard page runs on import)."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{a.name}" for a in node.names]
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def _loaded_after(modules: list[str]) -> set[str]:
    """The modules loaded by a fresh interpreter that imports `modules` (from the project root)."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        pass  # `from pkg import name` of a non-module name\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return set(out.split())


def test_the_dashboard_imports_neither_pyspark_nor_the_jobs() -> None:
    # The page's own imports (importing dashboard/app.py would run the page) and every module of
    # the dashboard package, insights view included: analytics, not jobs, and no Spark.
    dashboard = [
        "dashboard.alerts_view",
        "dashboard.auth",
        "dashboard.charts",
        "dashboard.insights_view",
        "dashboard.queries",
        "dashboard.settings",
    ]
    loaded = _loaded_after(dashboard + _top_level_imports("dashboard/app.py"))
    assert "analytics.catalogue" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in {"pyspark", "delta"}) == []
