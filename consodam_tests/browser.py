"""A real browser for pages people read: Debian's chromium, headless, driven from pytest.

Without chromium the browser tests skip with how to install it; in CI (`CI=true`, where `.ci/run` installs
it) a missing chromium fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

INSTALL_HINT = "install it with: sudo apt-get install -y --no-install-recommends chromium"


def chromium() -> str:
    found = (
        os.environ.get("CONSODAM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if found:
        return found
    message = f"chromium not found; {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def rendered_dom(url: str, *, wait_ms: int = 0, timeout: float = 120) -> str:
    """The page's DOM after it loaded and ran its scripts (for `wait_ms` of virtual time)."""
    with tempfile.TemporaryDirectory(prefix="consodam-chromium-") as profile:
        args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", f"--user-data-dir={profile}", "--dump-dom"]  # fmt: skip
        if wait_ms:
            args.insert(-1, f"--virtual-time-budget={wait_ms}")
        done = subprocess.run([*args, url], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, out: Path, *, wait_ms: int = 0, size: str = "1400,1000") -> Path:
    with tempfile.TemporaryDirectory(prefix="consodam-chromium-") as profile:
        args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={out}"]  # fmt: skip
        if wait_ms:
            args.append(f"--virtual-time-budget={wait_ms}")
        subprocess.run([*args, url], capture_output=True, text=True, timeout=120, check=True)
    assert out.stat().st_size > 1000
    return out
