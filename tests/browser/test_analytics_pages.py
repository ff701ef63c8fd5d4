"""The console's funnel, plan and monthly review pages in headless Chromium against a real
server, on the seven hand-computable leads of tests/support/analytics.py with live goals:
signed in with the board's session, each page shows its numbers and its charts, nothing is
blocked by the CSP, the tables stack on a phone; screenshots saved as test artefacts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from services.api import create_app
from shared.runtime import Runtime
from tests.browser.conftest import serving, watched_page
from tests.support.analytics import live
from tests.support.common import Database, make_settings

OPS_KEY = "ops-key-browser-analytics-0123456789ab"
PRINCIPALS = [{"name": "rev-ops", "key": OPS_KEY, "roles": ["ops"]}]


@pytest.fixture
async def runtime(sqlite_database: Database) -> AsyncIterator[Runtime]:
    await sqlite_database.clear()
    await live(sqlite_database)
    settings = make_settings(sqlite_database, auth={"secret_keys": [], "principals": PRINCIPALS})
    runtime = Runtime.create(settings)
    yield runtime
    await runtime.close()


async def test_the_funnel_plan_and_review_pages(
    runtime: Runtime, chromium: Path, artifacts: Path
) -> None:
    async with serving(create_app(runtime)) as base, watched_page(chromium) as (page, problems):
        await page.goto(f"{base}/ops/funnel")
        await expect(page).to_have_url(f"{base}/ops/sign-in")  # no session: sign in first
        await page.fill("#key", OPS_KEY)
        await page.click("button[type=submit]")

        await page.goto(f"{base}/ops/funnel?from=2026-03-01&to=2026-04-30&by=source")
        stages = page.locator("#stages tbody tr")
        await expect(stages).to_have_count(5)
        await expect(stages.nth(1)).to_contain_text("mql")
        await expect(stages.nth(2).locator("td").nth(3)).to_have_text("2")  # SQLs in order
        await expect(page.locator("#groups tbody tr")).to_have_count(3)
        await expect(page.locator("svg.chart")).to_have_count(2)
        await expect(page.locator("svg.chart rect.bar").first).to_be_visible()
        await page.screenshot(path=str(artifacts / "funnel.png"), full_page=True)

        await page.click("nav.console >> text=Plan")
        await expect(page.locator("h1")).to_have_text("Revenue plan, worked backwards")
        await expect(page.locator("#inputs")).to_contain_text("goals")
        await expect(page.locator("#needs tbody tr").first).to_contain_text("2026-03")
        await expect(page.locator("svg.chart")).to_have_count(2)
        await page.screenshot(path=str(artifacts / "plan.png"), full_page=True)

        await page.goto(f"{base}/ops/review?month=2026-03")
        await expect(page.locator("h1")).to_have_text("Monthly source review: 2026-03")
        await expect(page.locator("#sources tbody tr")).to_have_count(1)
        await expect(page.locator("#sources tbody tr")).to_contain_text("web")
        await expect(page.locator("#goals")).to_contain_text("mqls")
        await expect(page.locator("svg.chart")).to_have_count(4)
        await page.screenshot(path=str(artifacts / "review.png"), full_page=True)
        async with page.expect_download() as downloading:
            await page.click("text=Download (HTML and CSV, zip)")
        download = await downloading.value
        assert download.suggested_filename == "review-2026-03.zip"

        await phone_stacks(page, artifacts)
        assert problems == [], problems  # no error, nothing the CSP blocked


async def phone_stacks(page: Page, artifacts: Path) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    cell = page.locator("#sources tbody tr td").first
    assert await cell.evaluate("td => getComputedStyle(td).display") != "table-cell"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    await page.screenshot(path=str(artifacts / "review-phone.png"), full_page=True)
