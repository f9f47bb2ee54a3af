"""The shared browser plumbing (tests/browser.py) catches what the browser tests rely on it to catch."""

from __future__ import annotations

import pytest

from tests.browser import needs_chromium, watch

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

PAGE = "data:text/html,<script>console.error('boom'); setTimeout(() => { throw new Error('late') }, 0)</script>"


def test_watch_collects_console_and_page_errors(browser):
    errors: list[str] = []
    page = watch(browser.new_page(), errors)
    page.goto(PAGE)
    page.wait_for_timeout(200)
    assert any("boom" in e for e in errors) and any("late" in e for e in errors), errors
    page.context.close()


def test_only_strict_watch_counts_a_failed_resource_load(browser):
    for strict, counted in ((False, False), (True, True)):
        errors: list[str] = []
        page = watch(browser.new_page(), errors, strict=strict, label="who")
        page.set_content("<img src='http://127.0.0.1:9/missing.png'>")
        page.wait_for_timeout(500)
        assert bool(errors) is counted, (strict, errors)
        assert all(e.startswith("who ") for e in errors)
        page.context.close()
