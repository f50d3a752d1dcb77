"""The README's examples run as written: every command of its audit and report sections, on a store synced from
the demo's catalog (its seed; its first works), exits 0."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from consodam_pipeline.domain.periods import period_keys
from consodam_tests.pipeline import ingest, sync_partitions
from consodam_tests.support import Sandbox

README = Path(__file__).parent.parent / "README.md"
SECTIONS = ("## Audit: everything about an edition, at any moment", "### The compliance report")


def readme_commands() -> list[str]:
    """The `uv run consodam …` lines of the sections' bash blocks, as written."""
    text = README.read_text()
    commands = []
    for title in SECTIONS:
        start = text.index(title)
        end = text.find("\n## ", start + len(title))
        section = text[start : end if end > 0 else None]
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
            commands += [line for line in block.splitlines() if line.startswith("uv run consodam")]
    return commands


def test_the_readme_names_its_audit_and_report_commands() -> None:
    commands = readme_commands()
    assert (
        len(commands) >= 7 and any("report" in c for c in commands) and any("--as-of" in c for c in commands)
    )


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store synced from the demo's catalog (seed 7, as `make demo`), its first works only."""
    root = tmp_path_factory.mktemp("readme")
    sandbox = Sandbox(root / "sandbox", works=25, seed=7, dirt_rate=0.005, anchor=None).start()
    home = root / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            assert sync_partitions(sandbox, home, instance, period_keys()).success
    finally:
        sandbox.stop()
    return home


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_runs_as_written(command: str, demo_store: Path, tmp_path: Path) -> None:
    args = shlex.split(command, comments=True)
    assert args[:3] == ["uv", "run", "consodam"]
    consodam = str(Path(sys.executable).parent / "consodam")
    env = {**os.environ, "CONSODAM_HOME": str(demo_store)}
    env.pop("CONSODAM_STORE_URL", None)
    done = subprocess.run(
        [consodam, *args[3:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
