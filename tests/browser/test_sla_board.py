"""The SLA board in headless Chromium against a real server: sign in with a principal's key, see
the open clock, watch its breach arrive live (no reload) when the clock's breach tier fires,
acknowledge it with the button, and find the acknowledgement in the database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from playwright.async_api import Page, expect

from services.api import create_app
from services.sla_monitor import store
from services.sla_monitor.clocks import fire
from services.sla_monitor.ladder import Tier
from services.sla_monitor.models import SlaClock
from shared.ids import new_id
from shared.outbox import stage
from shared.runtime import Runtime
from tests.browser.conftest import serving, watched_page
from tests.support.common import Database, make_settings

OPS_KEY = "ops-key-browser-0123456789abcdef012345"
PRINCIPALS = [{"name": "ops-ann", "key": OPS_KEY, "roles": ["ops"]}]
LIVE_WAIT_MS = 15_000
CLOCK: dict[str, Any] = {
    "kind": "first_response",
    "policy": "inbound-standard",
    "policy_version": 1,
    "owner_email": "ann@example.com",
    "calendar": "always",
    "target_s": 900.0,
    "responses": ["call", "email"],
}


@pytest.fixture
async def runtime(sqlite_database: Database) -> AsyncIterator[Runtime]:
    await sqlite_database.clear()
    settings = make_settings(sqlite_database, auth={"secret_keys": [], "principals": PRINCIPALS})
    runtime = Runtime.create(settings)
    yield runtime
    await runtime.close()


async def overdue_clock(runtime: Runtime) -> UUID:
    """An open first-response clock whose deadline passed a minute ago, its warning sent, its
    breach tier not fired yet (the sweep has not come round to it)."""
    now = datetime.now(UTC)
    started = now - timedelta(minutes=16)
    deadline = started + timedelta(minutes=15)
    tiers = [
        Tier(1, "50%", "warning", started + timedelta(minutes=7.5), ("ann@example.com",)),
        Tier(2, "100%", "breach", deadline, ("lead@example.com",)),
    ]
    clock_id = new_id()
    row: dict[str, Any] = CLOCK | {
        "id": clock_id,
        "lead_id": new_id(),
        "state": "open",
        "team": "inside",
        "started_at": started,
        "deadline": deadline,
        "tiers": [t.to_json() for t in tiers],
        "next_tier": 2,
        "next_due_at": deadline,
        "created_at": started,
        "updated_at": started + timedelta(minutes=7.5),
    }
    async with runtime.sessions.begin() as session:
        session.add(SlaClock(**row))
    return UUID(str(clock_id))


async def decided_clocks(runtime: Runtime) -> None:
    """Last week's first-response clocks, met (one of them late): the attainment bars."""
    now = datetime.now(UTC)
    decided = [("inside", 240.0, False), ("inside", 600.0, False), ("inside", 1500.0, True)]
    decided += [("outbound", 420.0, False)]
    async with runtime.sessions.begin() as session:
        for team, working_s, late in decided:
            started = now - timedelta(days=7)
            deadline = started + timedelta(minutes=15)
            session.add(
                SlaClock(
                    **CLOCK,
                    id=new_id(),
                    lead_id=new_id(),
                    team=team,
                    state="met",
                    started_at=started,
                    deadline=deadline,
                    tiers=[],
                    next_tier=1,
                    closed_at=started + timedelta(seconds=working_s),
                    closed_reason="met",
                    working_time_s=working_s,
                    created_at=started,
                    updated_at=started + timedelta(seconds=working_s),
                )
            )
            assert (started + timedelta(seconds=working_s) > deadline) == late


async def fire_due_tiers(runtime: Runtime, clock_id: UUID) -> int:
    """What the sweep does to a due clock, in one transaction."""
    async with runtime.sessions.begin() as session:
        row = await store.clock(session, clock_id, lock=True)
        assert row is not None
        now = datetime.now(UTC)
        events = fire(row, now=now, late_after=timedelta(hours=1))
        await stage(session, runtime.settings, *events)
        return len(events)


async def sign_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/ops/sla")
    await expect(page).to_have_url(f"{base}/ops/sign-in")
    await page.fill("#key", OPS_KEY)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/ops/sla")


async def test_a_breach_appears_live_and_is_acknowledged_from_the_board(
    runtime: Runtime, chromium: Path, artifacts: Path
) -> None:
    clock_id = await overdue_clock(runtime)
    await decided_clocks(runtime)
    async with serving(create_app(runtime)) as base, watched_page(chromium) as (page, problems):
        await sign_in(page, base)

        opened = page.locator(f'#open-rows tr[data-clock-id="{clock_id}"]')
        await expect(opened).to_be_visible()
        await expect(opened.locator("td.status")).to_have_text("overdue")
        await expect(opened.locator("td.left")).to_have_text(re.compile(r"^-\d+m \d\ds$"))
        await expect(page.locator("#breach-rows tr")).to_have_count(0)
        bars = page.locator("table.attainment tbody tr")
        await expect(bars).to_have_count(2)
        await expect(bars.first).to_contain_text("66.7%")
        await expect(bars.first.locator("svg.bar rect.fill.good")).to_have_attribute(
            "width", "66.7"
        )
        await expect(page.locator("#live")).to_have_text("live")  # the stream is open
        await page.evaluate("window.boardMarker = 'no reload'")

        assert await fire_due_tiers(runtime, clock_id) == 1
        breached = page.locator(f'#breach-rows tr[data-clock-id="{clock_id}"]')
        await expect(breached).to_be_visible(timeout=LIVE_WAIT_MS)
        await expect(breached.locator("td.status")).to_have_text("breached")
        await expect(opened).to_have_attribute("data-tone", "breached")
        assert await page.evaluate("window.boardMarker") == "no reload"

        await breached.get_by_role("button", name="Acknowledge").click()
        await expect(breached.locator("td.status")).to_have_text("acknowledged by ops-ann")
        await expect(opened.locator("td.status")).to_have_text("acknowledged by ops-ann")
        await expect(breached.get_by_role("button", name="Acknowledge")).to_be_hidden()
        async with runtime.sessions() as session:
            row = await store.clock(session, clock_id)
            assert row is not None and row.acknowledged_by == "ops-ann"
            assert row.acknowledged_at is not None and row.breached_at == row.deadline

        await page.screenshot(path=str(artifacts / "sla-board.png"), full_page=True)
        await phone_layout_stacks_rows(page, artifacts)
        assert problems == [], problems  # no script error, nothing the CSP blocked


async def phone_layout_stacks_rows(page: Page, artifacts: Path) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    cell = page.locator("#open-rows tr td").first
    assert await cell.evaluate("td => getComputedStyle(td).display") != "table-cell"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    await page.screenshot(path=str(artifacts / "sla-board-phone.png"), full_page=True)
