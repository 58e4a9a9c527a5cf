"""The import contract: manifests <- indexer <- port, and inside port, layers that only
look down. A new back-edge fails here, naming the file and the import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"manifests": {"indexer", "port"}, "indexer": {"port"}}

# port's units (a module port/x.py or a package port/x/), lowest layer first. A unit may
# import itself and the units of lower layers; within a layer only the base's units may
# import each other. `work` is the only place where the domains meet.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "base",
        frozenset(
            {"errors", "orm", "settings", "outbound", "registries", "signing", "metrics"}
            | {"principal"}
            | {"events", "db", "settings_docs", "assets", "secretbox"}
        ),
    ),
    ("generic jobs", frozenset({"jobs"})),
    ("core domains", frozenset({"accounts", "catalogue"})),
    ("domains", frozenset({"deploy", "notify", "webhooks"})),
    ("reaching apps", frozenset({"apps"})),
    ("every table", frozenset({"tables"})),
    ("the examples", frozenset({"demo"})),
    ("CLI helpers", frozenset({"clitools", "demo_images"})),
    ("surfaces", frozenset({"api", "web", "proxy", "cli_deploy", "cli_catalogue", "cli_accounts"})),
    ("wiring", frozenset({"work"})),
    ("processes", frozenset({"serve"})),
    ("command line", frozenset({"cli"})),
)
LAYER_OF = {unit: index for index, (_, units) in enumerate(LAYERS) for unit in units}
NOT_UNITS = {"__init__", "migrations"}  # the package marker; Alembic's scripts


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "port":  # `from port import db`
                names.update(f"port.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def unit_of(path: Path) -> str:
    return path.relative_to(ROOT / "port").parts[0].removesuffix(".py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def port_files() -> list[Path]:
    return [p for p in sorted((ROOT / "port").rglob("*.py")) if unit_of(p) not in NOT_UNITS]


def test_every_unit_of_port_has_a_layer() -> None:
    assert sorted({unit_of(p) for p in port_files()} - LAYER_OF.keys()) == []


def back_edges(path: Path, unit: str) -> list[str]:
    """The imports of ``path`` (a file of ``unit``) that break the layering."""
    layer = LAYER_OF[unit]
    found = []
    for module in sorted(imported_modules(path)):
        parts = module.split(".")
        if parts[0] != "port" or len(parts) < 2 or parts[1] == unit:
            continue
        target = LAYER_OF.get(parts[1])
        if target is None or target < layer or target == layer == 0:
            continue  # `port.__init__` holds nothing; lower layers; the base
        found.append(f"{path.name} ({LAYERS[layer][0]}) imports {module} ({LAYERS[target][0]})")
    return found


def test_port_layers_only_look_down() -> None:
    offenders = {
        str(path.relative_to(ROOT)): back_edges(path, unit_of(path)) for path in port_files()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_contract_catches_back_edges(tmp_path: Path) -> None:
    """The rule can fail: the generic worker importing a domain, a domain importing a
    sibling, the API importing the wiring."""
    source = tmp_path / "module.py"
    source.write_text(
        "from port.catalogue.models import Repo\nfrom port import db, webhooks\n"
        "def later():\n    import port.work.jobs\n"
    )
    assert back_edges(source, "jobs") == [
        "module.py (generic jobs) imports port.catalogue.models (core domains)",
        "module.py (generic jobs) imports port.webhooks (domains)",
        "module.py (generic jobs) imports port.work.jobs (wiring)",
    ]
    assert back_edges(source, "deploy") == [
        "module.py (domains) imports port.webhooks (domains)",
        "module.py (domains) imports port.work.jobs (wiring)",
    ]
    assert back_edges(source, "api") == ["module.py (surfaces) imports port.work.jobs (wiring)"]


def test_tests_import_helpers_from_modules_not_from_conftest() -> None:
    """conftest files hold fixtures; what a test imports lives in tests/harness.py,
    tests/deployfakes.py or tests/integration/{git,docker}fixtures.py."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if "conftest" in m)
        for path in sorted((ROOT / "tests").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
