"""The layout holds what the README's map says: definitions are thin declarations, the rooms import downwards
only (no cycle), one way into the ledger, no module too long to read, and `dg check defs` accepts the project."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from consodam_pipeline.domain.events import ASSET_USED, EVENT_KINDS

PACKAGE = Path(__file__).parent.parent / "consodam_pipeline"
# Each room may import from the rooms listed (and itself); modules at the package root are the entry points.
ALLOWED = {
    "domain": set(),
    "clients": {"domain", "endpoints"},
    "store": {"domain", "ports"},
    "sync": {"domain", "clients", "store", "endpoints"},
    "derived": {"domain", "clients", "store", "sync"},
    "openlineage": {"domain", "clients", "store", "sync"},
    "audit": {"domain", "store"},
    "defs": {"domain", "clients", "store", "sync", "derived", "openlineage", "endpoints"},
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported(path: Path) -> list[str]:
    """Every consodam_pipeline module the file imports, at any depth (lazy imports count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "consodam_pipeline":
            found += [f"consodam_pipeline.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("consodam_pipeline"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("consodam_pipeline")]
    return found


def test_rooms_import_downwards_only_and_defs_never_import_another_flows_defs() -> None:
    wrong = []
    for path in modules():
        here = room(path)
        for module in imported(path):
            parts = module.split(".")
            there = parts[1] if len(parts) > 1 else "consodam_pipeline"
            if here in ALLOWED and there != here and there not in ALLOWED[here]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
            if here == "defs" and there == "defs":
                wrong.append(f"{path.relative_to(PACKAGE)} imports another definition module, {module}")
    assert wrong == []


def asset_sizes(path: Path) -> list[tuple[str, int]]:
    """(name, lines with its decorators) of every asset function declared in the file."""
    sizes = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if any(
            re.search(r"\b(asset|write_asset|period_asset)\b", d) and "asset_check" not in d
            for d in decorators
        ):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            sizes.append((node.name, (node.end_lineno or node.lineno) - start + 1))
    return sizes


def test_every_asset_is_a_short_declaration() -> None:
    sizes = {
        name: (size, path) for path in (PACKAGE / "defs").rglob("*.py") for name, size in asset_sizes(path)
    }
    assert len(sizes) == 13  # every asset function of the graph was found (edition_changes is a spec)
    too_long = {
        name: size for name, (size, path) in sizes.items() if size > (30 if "ingest" in path.parts else 40)
    }
    assert too_long == {}


def test_no_module_too_long_and_no_store_class_over_250_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > 500 and p.name != "catalog.py"
    }
    assert long == {}
    classes = {}
    for path in (PACKAGE / "store").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and (node.end_lineno or 0) - node.lineno + 1 > 250:
                classes[f"{path.name}:{node.name}"] = (node.end_lineno or 0) - node.lineno + 1
    assert classes == {}


def test_one_way_into_the_ledger_and_no_sql_in_the_definitions() -> None:
    for path in (PACKAGE / "defs").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"append_events|audit_ledger|\.record\(|sqlalchemy|sa\.", text), path
    writers = [
        str(p.relative_to(PACKAGE))
        for p in modules()
        if "audit_ledger" in p.read_text() and room(p) not in ("store", "audit", "bench")
    ]
    assert writers == []  # the ledger table is named only by the store, the audit (reads) and the benchmarks


def test_every_event_type_the_code_writes_is_declared() -> None:
    """The event types written anywhere (targets' written and removed events, literal event types) are the
    registry's, so the audit and the report know the system and what each row names."""
    written = set()
    for path in modules():
        text = path.read_text()
        written |= set(re.findall(r'(?:written_event|removed_event)(?::\s*str)?\s*=\s*"([a-z_]+)"', text))
        written |= set(re.findall(r'event_type="([a-z_]+)"', text))
        written |= set(re.findall(r'pl\.lit\("([a-z_]+)"\)\.alias\("event_type"\)', text))
        written |= set(re.findall(r'Settled\(\s*"([a-z_]+)"', text))
        written |= set(re.findall(r'out\.add\([^,]+,\s*"([a-z_]+)"', text))
        written |= set(re.findall(r'\bevent\(\s*"([a-z_]+)"', text))
    written |= {
        f"version_{s}" for s in ("approved", "rejected", "in_review")
    }  # concat_str("version_", status)
    written -= {ASSET_USED}  # the usage log's rows, as the report names them: not a ledger event
    assert written, "no event type found"
    assert written - set(EVENT_KINDS) == set()
    assert {k for k, v in EVENT_KINDS.items() if v.reachable} - written == set()


@pytest.mark.skipif(
    shutil.which("dg", path=str(Path(sys.executable).parent)) is None, reason="dg not installed"
)
def test_dg_checks_and_lists_the_definitions(tmp_path: Path) -> None:
    dg = shutil.which("dg", path=str(Path(sys.executable).parent))
    assert dg is not None
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "CONSODAM_HOME": str(tmp_path / "home")}
    root = PACKAGE.parent
    checked = subprocess.run(
        [dg, "check", "defs"], cwd=root, env=env, capture_output=True, text=True, timeout=240
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = subprocess.run(
        [dg, "list", "defs", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=240
    )
    assert listed.returncode == 0, listed.stderr
    assert "launch_collections" in listed.stdout and "edition_sync_sensor" in listed.stdout
