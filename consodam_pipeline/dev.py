"""What `consodam dev` (`make dev`) starts beside the sandboxes: Dagster's `dg dev` (webserver, daemon and
the code server) on the instance in DAGSTER_HOME. `consodam bench latency` starts the same."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def dev_command(port: int) -> list[str]:
    dg = shutil.which("dg", path=str(Path(sys.executable).parent)) or "dg"
    return [dg, "dev", "--port", str(port), "--log-level", "info", "--code-server-log-level", "info"]


def dev_env() -> dict[str, str]:
    """`dg dev` runs the project in this interpreter's environment, whichever shell started it."""
    return {"VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
