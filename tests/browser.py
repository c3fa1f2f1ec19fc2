"""Debian's Chromium under Playwright, shared by the browser tests.

Playwright's own browser download cannot work here; the tests drive /usr/bin/chromium. When
it (or playwright) is missing the tests skip locally and fail with CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the test extra not installed: skipped, or a failure in CI
    sync_playwright = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Every *.test host is this machine; nothing else is mapped.
    "--host-resolver-rules=MAP *.test 127.0.0.1",
]


def browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM}: run `bash tracker/install-browser.sh`"
    if sync_playwright is None:
        return "playwright is not installed: run `make install`"
    return None


def desktop_user_agent(browser: Browser) -> str:
    """Chromium's own headless user agent says HeadlessChrome, which the bot filter drops."""
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" Chrome/{browser.version} Safari/537.36"
    )


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    reason = browser_missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the browser tests must run)")
        pytest.skip(reason)
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
