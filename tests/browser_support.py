"""Pages in a real browser: Debian's chromium driven by Playwright (browser downloads do not
work here, so `executable_path` names the system's), and where the screenshots go.

Tests of pages are skipped on a machine without chromium, except in CI, where its absence
fails them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(os.environ.get("SKILLSWAP_SCREENSHOTS", "build/screenshots"))

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true", reason="no chromium on this machine"
)

# Quiet, headless, no sandbox (the tests run as root in CI).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
)

# Every CSP violation the page sees, kept where the test can read it.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


async def launch_chromium(playwright: Any, *extra_args: str) -> Any:
    """The system's chromium, launched by `playwright` with CHROMIUM_ARGS and `extra_args`."""
    assert CHROMIUM, "CI must have chromium"
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args]
    )


def screenshot_path(name: str) -> str:
    """Where the screenshot `name` (without .png) goes; the folder is made if missing."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
