"""A real browser for pages people read: Debian's chromium, headless, driven from pytest through Playwright
(which waits for what a person would wait for: text on the page, not a fixed delay).

Without chromium the browser tests skip with how to install it; in CI (`CI=true`, where `.ci/run` installs
it) a missing chromium fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A fresh page in headless chromium."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
        )
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
