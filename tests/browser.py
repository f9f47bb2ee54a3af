"""One home for the browser tests' plumbing: Chromium's launch, signing in, what counts as a browser-side
error, and where screenshots go. The fixtures (`browser`, `shots`) are registered in tests/conftest.py.

A browser test module starts with `pytestmark = BROWSER` (or its own list built from it), asks for
`browser` and `shots`, and ends with `assert not errors, errors` on the list `watch` fills.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Debian's Chromium under Playwright (its own browser download fails offline): see docs/ENVIRONMENT.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct-horse-battery"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
LAPTOP = {"viewport": {"width": 1440, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)
# The marks every live-server browser test carries (the live server needs a transactional database).
BROWSER = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True), needs_chromium]


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium for the length of the block.

    Playwright's sync API runs an event loop in this thread for as long as the browser lives; the ORM
    calls made meanwhile (the test's own, and pytest-django setting up or flushing the database) are
    still plain synchronous code, so Django's async-safety check is told to allow them until the end.
    """
    from playwright.sync_api import sync_playwright

    before = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if before is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = before


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module; each test opens its own contexts (cookies are per context)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where a test's screenshots go: the folder named by the module's SCREENSHOTS_ENV variable
    (EVALHUB_SCREENSHOTS unless the module says otherwise), else a temporary one."""
    variable = getattr(request.module, "SCREENSHOTS_ENV", "EVALHUB_SCREENSHOTS")
    folder = Path(os.environ.get(variable) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def watch(
    page: Any,
    errors: list[str],
    *,
    timeout_ms: int = 20_000,
    label: str = "",
    strict: bool = False,
) -> Any:
    """Collect the page's script errors and console errors into `errors`; returns the page.

    By default a failed resource load in the console (the favicon's 404: none is shipped) does not
    count. `strict` counts every console error, every failed request and every HTTP status of 400 or
    more. `label` prefixes each entry (the role, where several pages share one list).
    """
    prefix = f"{label} " if label else ""
    page.set_default_timeout(timeout_ms)  # generous: CI boxes are shared and sometimes slow
    page.on("pageerror", lambda e: errors.append(f"{prefix}page error: {e}"))

    def console(message: Any) -> None:
        if message.type == "error" and (strict or "Failed to load resource" not in message.text):
            errors.append(f"{prefix}console {message.type}: {message.text}")

    page.on("console", console)
    if strict:
        # net::ERR_ABORTED is the browser cancelling a load because the page moved on (an image still
        # loading when the test clicks a link); a load the server refused shows as its HTTP status below.
        page.on(
            "requestfailed",
            lambda r: errors.append(f"{prefix}request failed: {r.method} {r.url} {r.failure}")
            if "ERR_ABORTED" not in (r.failure or "")
            else None,
        )
        page.on(
            "response",
            lambda r: errors.append(f"{prefix}HTTP {r.status}: {r.request.method} {r.url}") if r.status >= 400 else None,
        )
    return page


def sign_in(
    page: Any,
    base_url: str,
    username: str,
    *,
    password: str = PASSWORD,
    then: str | None = None,
    login_path: str = "/accounts/login/",
    username_field: str = "#id_username",
    password_field: str = "#id_password",  # noqa: S107  (a CSS selector, not a password)
    submit: str = "button[type=submit]",
) -> Any:
    """Log in through the login form and wait for the page it leads to (`then`, a path, when given)."""
    page.goto(f"{base_url}{login_path}")
    page.fill(username_field, username)
    page.fill(password_field, password)
    if then is None:
        with page.expect_navigation():
            page.click(submit)
    else:
        page.click(submit)
        page.wait_for_url(f"{base_url}{then}")
    return page


def open_page(
    browser: Any, live_server: Any, username: str, errors: list[str], *, context: dict[str, Any] | None = None,
    then: str | None = None, **watch_options: Any,
) -> Any:
    """A new context's page, watched into `errors` and signed in as `username`."""
    page = watch(browser.new_context(**(context or LAPTOP)).new_page(), errors, **watch_options)
    return sign_in(page, live_server.url, username, then=then)


def navigate(page: Any, action: Callable[[], Any]) -> None:
    """Run an action that loads another page and wait for that navigation."""
    with page.expect_navigation():
        action()
