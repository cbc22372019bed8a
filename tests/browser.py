"""Headless Chromium for browser tests: Debian's chromium, driven by Playwright."""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SCS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run",
]


def launch_options():
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


def require_chromium():
    """Skip (or, with SCS_REQUIRE_BROWSER=1, fail) when Chromium is not installed."""
    if Path(CHROMIUM).exists():
        return
    reason = f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run browser tests"
    if os.environ.get("SCS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SCS_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)

