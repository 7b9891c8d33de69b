"""The layout holds: the dashboard loads without Spark, and the packages import one way only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
    assert sorted(m for m in loaded if m.split(".")[0] in {"pyspark", "delta", "jobs"}) == []


# Which package may import which (ast, every import, function-level ones too). jobs and ops
# never import each other: both build their clients with common.clients and read their
# settings from common. The one exception is waiting for a rewrite under way on main:
# jobs/poison_batches.py raises its alert through ops.alerts (to move with it after the merge).
FORBIDDEN = {
    "contract": {"common", "jobs", "ops", "analytics", "dashboard", "bench", "ingest"},
    "common": {"jobs", "ops", "analytics", "dashboard", "bench", "ingest"},
    "jobs": {"ops", "analytics", "dashboard", "bench"},
    "ops": {"jobs", "analytics", "dashboard", "bench"},
    "analytics": {"jobs", "ops", "dashboard", "bench"},
    "dashboard": {"jobs", "bench"},
}
KNOWN_EXCEPTIONS = {("jobs/poison_batches.py", "ops.alerts")}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_packages_import_one_way() -> None:
    wrong = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            wrong += [
                (rel, name)
                for name in sorted(_imports(path))
                if name.split(".")[0] in forbidden and (rel, name) not in KNOWN_EXCEPTIONS
            ]
    assert wrong == []


def test_no_script_folder_hides_a_standard_module() -> None:
    """A script run as `spark-submit DIR/x.py` (or `python DIR/x.py`) has DIR first on its path:
    a DIR/profile.py there hid the standard library's `profile`, and PySpark's profiler import
    broke `make bench`. No module of such a folder may share a standard module's name."""
    folders = ("bench", "jobs", "scripts", "ops", "dashboard", "ingest")
    clashes = sorted(
        str(path.relative_to(ROOT))
        for folder in folders
        for path in (ROOT / folder).glob("*.py")
        if path.stem in sys.stdlib_module_names
    )
    assert clashes == []
