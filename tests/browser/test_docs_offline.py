"""``/docs`` in headless Chromium with no network but the loopback: every request to another
host is aborted (and recorded), yet Swagger UI renders the API's operations from Leadflow's own
files, under the page's Content-Security-Policy, with no violation and no script error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Route, expect

from services.api import create_app
from shared.runtime import Runtime
from tests.browser.conftest import serving, watched_page
from tests.support.common import Database, make_settings

# Recorded from the page's first script on: what the policy blocked (a blocked inline script
# or style raises no script error of its own, only this event).
WATCH_POLICY = """
window.policyViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.policyViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@pytest.fixture
async def runtime(sqlite_database: Database) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_settings(sqlite_database))
    yield runtime
    await runtime.close()


async def loopback_only(page: Page) -> list[str]:
    """Abort every request to a host other than 127.0.0.1, as a machine offline would; the
    URLs that were tried."""
    elsewhere: list[str] = []

    async def route(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", route)
    return elsewhere


async def test_the_docs_render_offline_under_a_strict_policy(
    runtime: Runtime, chromium: Path, artifacts: Path
) -> None:
    async with serving(create_app(runtime)) as base, watched_page(chromium) as (page, problems):
        elsewhere = await loopback_only(page)
        await page.add_init_script(WATCH_POLICY)

        answer = await page.goto(f"{base}/docs")
        assert answer is not None and answer.ok
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy

        post_lead = page.locator(".opblock-post").filter(
            has=page.locator('.opblock-summary-path[data-path="/v1/leads"]')
        )
        await expect(post_lead).to_have_count(1, timeout=15_000)
        await post_lead.locator(".opblock-summary").click()  # opens it: parameters, body, answers
        await expect(post_lead.locator(".opblock-body")).to_be_visible()
        await expect(post_lead.locator(".responses-wrapper")).to_contain_text("202")
        await expect(page.locator(".opblock").first).to_be_visible()
        await page.screenshot(path=str(artifacts / "docs.png"))

        assert elsewhere == [], elsewhere  # nothing asked of another origin
        assert await page.evaluate("window.policyViolations") == []
        assert problems == [], problems  # no script error, no failed request
