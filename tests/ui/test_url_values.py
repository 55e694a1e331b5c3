"""Values from a shared link are shown as plain text (issue 27): `?mode=[Sign in again](http://e.com/login)` must
not become a link on the page, `![x](http://e.com/x.png)` not an image, `<img src=x onerror=…>` not an element.

`ui.services.state.plain` quotes a URL value in a code span; the app's warnings are checked through AppTest (the
Markdown Streamlit renders) and in chromium (the page's own elements).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from apptest import open_app

from benchmarks.live_app import CHROMIUM_ARGS, IDLE
from ui.services.state import plain

LINK = "[Sign in again](http://e.com/login)"
IMAGE = "![x](http://e.com/x.png)"
HTML = "<img src=x onerror=alert(1)>"
HOSTILE = {"mode": LINK, "sparsity": IMAGE, "method": HTML, "budget": LINK, "present": IMAGE, "lesson": LINK}
CODE_SPAN = re.compile(r"`[^`]*`")


def outside_code(markdown: str) -> str:
    """The Markdown text left once code spans (shown verbatim) are taken out: where a link or image would act."""
    return CODE_SPAN.sub("", markdown)


@pytest.mark.parametrize("value", [LINK, IMAGE, HTML, "a`b](http://e.com)", "x" * 500, "line\n[l](http://e.com)"])
def test_plain_puts_the_value_in_one_code_span_cut_to_its_limit(value):
    shown = plain(value)
    assert CODE_SPAN.fullmatch(shown), shown
    assert shown.strip("`") == repr(value if len(value) <= 40 else value[:40] + "…").replace("`", "'")


def test_every_hostile_url_value_is_quoted_as_code_in_its_warning():
    at = open_app(**HOSTILE)
    assert not at.exception and at.metric, "the page works with the defaults"
    warnings = [w.value for w in at.warning]
    for name, value in HOSTILE.items():
        quoting = [w for w in warnings if w.startswith(f"{name}=")]
        assert len(quoting) == 1, (name, warnings)
        assert plain(value) in quoting[0], quoting[0]
    for w in warnings:
        rest = outside_code(w)
        assert "e.com" not in rest and "](" not in rest and "<" not in rest, w


@pytest.mark.browser
def test_no_link_image_or_element_from_the_url_reaches_the_page(server, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/?{urlencode(HOSTILE)}", timeout=60_000)
            page.wait_for_selector("[data-testid='stAlert']", timeout=120_000)
            page.wait_for_selector(IDLE, timeout=240_000)
            alerts = page.locator("[data-testid='stAlert']").all_inner_texts()
            assert any("Sign in again" in a for a in alerts), alerts  # shown, as text
            assert page.locator('a[href*="e.com"]').count() == 0
            assert page.locator('img[src*="e.com"]').count() == 0
            assert page.locator('img[src="x"]').count() == 0 and page.locator("img[onerror]").count() == 0
        finally:
            browser.close()
