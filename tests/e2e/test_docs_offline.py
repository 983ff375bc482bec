"""``/docs`` and ``/redoc`` on an isolated network: headless Chromium with every request that does
not go to the engine itself aborted, as on a state network without a way out."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import IN_CI
from tests.serving import served as serving

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = os.environ.get("EINVOICE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS += ["--disable-sync"]
# Operation summaries of the OpenAPI description that each page must list.
OPERATIONS = ("Submit an invoice or credit note", "Validate without storing", "List the supplier's own documents")


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message + " (CI=true: browser tests must not skip)", pytrace=False)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``einvoice serve`` on a free port with a fresh data directory; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EINVOICE_")}
    env["EINVOICE_DATA_DIR"] = str(tmp_path_factory.mktemp("served"))
    with serving(env) as base:
        yield base


def _page_text_offline(chromium: str, url: str, wait_for: str) -> tuple[str, list[tuple[str, str]]]:
    """Open ``url`` with every request off 127.0.0.1 aborted; return the page's text once
    ``wait_for`` shows (or after 20 s), and the (resource type, URL) of each aborted request."""
    from playwright.sync_api import Route, sync_playwright

    blocked: list[tuple[str, str]] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append((route.request.resource_type, route.request.url))
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(service_workers="block")
            context.route("**/*", only_local)
            page = context.new_page()
            page.goto(url, wait_until="domcontentloaded")
            with contextlib.suppress(Exception):  # the assertions say what is missing
                page.get_by_text(wait_for).first.wait_for(timeout=20_000)
            return page.inner_text("body"), blocked
        finally:
            browser.close()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_list_the_operations_without_internet(chromium: str, served: str, path: str) -> None:
    text, blocked = _page_text_offline(chromium, served + path, OPERATIONS[0])
    # ReDoc's menu footer shows Redocly's logo from their CDN, and hides it when it does not load;
    # any other request off the engine (a script, a style sheet, a font) is a page that needs one.
    needed = [url for kind, url in blocked if kind != "image"]
    assert needed == [], f"{path} needs resources from off the engine: {needed}"
    for operation in OPERATIONS:
        assert operation in text, f"{path} does not list {operation!r}"
