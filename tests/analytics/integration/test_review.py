"""The monthly source review over a real database (SQLite and PostgreSQL): the seven
hand-computable leads of tests/support/analytics.py with sales' rejections, the live goals, and
three first-response clocks of March; every number of March's review, its CSV tables, its page
and zip through the API, ``leadflow report monthly``, and the review the analytics process
writes once the month is over."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.analytics import review_files
from services.analytics.main import write_last_review
from services.analytics.reports import monthly_review
from services.analytics.review import tables
from services.analytics.settings import AnalyticsSettings
from services.analytics.versions import GOALS
from services.cli import app
from services.sla_monitor.analytics import attainment_by_source
from services.sla_monitor.models import SlaClock
from shared.cosign import store as cosigned
from shared.runtime import Runtime
from tests.support.analytics import GOALS_TEXT, Leads, with_rejections
from tests.support.common import Database, make_settings
from tests.support.intake import AUTH, client_for

MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)


def clock(
    lead_id: Any, source: str, *, met_after_min: float | None, target_min: float = 60
) -> SlaClock:
    started = MARCH
    deadline = started + timedelta(minutes=target_min)
    closed = started + timedelta(minutes=met_after_min) if met_after_min is not None else None
    return SlaClock(
        lead_id=lead_id, kind="first_response", state="met" if closed else "open", policy="hot",
        source=source, calendar="always", started_at=started, target_s=target_min * 60,
        deadline=deadline, tiers=[], responses=["call"], next_tier=2,
        breached_at=deadline if closed is None or closed > deadline else None,
        closed_at=closed, working_time_s=met_after_min * 60 if met_after_min is not None else None,
        created_at=started, updated_at=started,
    )  # fmt: skip


async def prepared(db: Database) -> Leads:
    leads = await with_rejections(db)
    async with db.sessions.begin() as session:
        settings = make_settings(db)
        await cosigned.bootstrap(session, settings, GOALS, GOALS_TEXT, by="tests", now=MARCH)
        session.add_all(
            [
                clock(leads.ids["A"], "web", met_after_min=20),  # in time
                clock(leads.ids["B"], "web", met_after_min=90),  # late: breached
                clock(leads.ids["C"], "web", met_after_min=None),  # never answered: breached
            ]
        )
    return leads


async def test_every_number_of_marchs_review(db: Database) -> None:
    await prepared(db)
    async with db.sessions() as session:
        review = await monthly_review(
            session, AnalyticsSettings(), month="2026-03", today=date(2026, 4, 10),
            sla=attainment_by_source,
        )  # fmt: skip
    [web] = review.sources  # March's cohort is A, B, C: all from the web
    assert (web.inquiries, web.mqls, web.sqls, web.bookings) == (3, 2, 2, 1)
    assert (web.mql_to_sql, web.sql_to_booking) == (1.0, 0.5)
    assert web.mql_to_sql_interval == (pytest.approx(0.3424, abs=1e-4), 1.0)  # 2 of 2: small
    assert (web.sla_clocks, web.sla_attainment_pct, web.sla_p50_s) == (3, 33.3, 1200.0)
    assert web.booked_amount == 950.0  # A's booking, 20 March
    goals = {g.metric: (g.goal, g.actual, g.gap) for g in review.goals}
    assert goals["mqls"] == (4, 2, -2) and goals["bookings_amount"] == (10000.0, 950.0, -9050.0)
    assert review.goals_version == 1
    assert review.reasons == [("web", "lost", "(none)", 1)]  # B; D and G were rejected in April
    assert [r[0] for r in review.rules] == ["business-email", "senior-title"]  # A and B's rules

    written = tables(review)
    assert written["sources"][1] == [["web", 3, 2, 2, 1, 1, 0.5, 3, 33.3, 1200, 950.0]]
    page = review_files.html(review)
    assert "Monthly source review: 2026-03" in page and page.count("<svg") == 4
    assert "34%–100%" in page  # the interval, not a bare 100 %
    files = zipfile.ZipFile(io.BytesIO(review_files.archive(review, page)))
    assert sorted(files.namelist()) == [
        "review-2026-03-feedback.csv", "review-2026-03-goals.csv", "review-2026-03-rules.csv",
        "review-2026-03-sources.csv", "review-2026-03.html",
    ]  # fmt: skip
    rows = list(csv.reader(io.StringIO(files.read("review-2026-03-goals.csv").decode())))
    assert rows[0] == ["metric", "goal", "actual", "gap"] and ["mqls", "4", "2", "-2"] in rows


async def test_the_review_through_the_api_the_cli_and_the_process(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await prepared(db)
    runtime = Runtime.create(make_settings(db, analytics={"review_dir": str(tmp_path / "reviews")}))
    try:
        async with client_for(runtime, headers=AUTH) as client:
            page = await client.get("/v1/reports/monthly/2026-03")
            assert page.status_code == 200, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert "33.3 % of 3" in page.text
            archive = await client.get("/v1/reports/monthly/2026-03/archive")
            assert (
                archive.headers["content-disposition"]
                == 'attachment; filename="review-2026-03.zip"'
            )
            assert (
                "review-2026-03-sources.csv"
                in zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
            )
            bad = await client.get("/v1/reports/monthly/2026-13")
            assert bad.status_code == 422 and bad.json()["field"] == "month"
        async with client_for(runtime) as client:
            assert (await client.get("/v1/reports/monthly/2026-03")).status_code == 401

        written = await write_last_review(
            runtime, attainment_by_source, now=datetime(2026, 4, 2, tzinfo=UTC)
        )
        assert sorted(p.name for p in written) == ["review-2026-03.html", "review-2026-03.zip"]
        again = await write_last_review(
            runtime, attainment_by_source, now=datetime(2026, 4, 3, tzinfo=UTC)
        )
        assert again == []  # written once
    finally:
        await runtime.close()

    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["report", "monthly", "--month", "2026-03", "--out", str(tmp_path / "cli"), "--json"],
    )
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    assert [Path(f).name for f in files] == ["review-2026-03.html", "review-2026-03.zip"]
    assert "33.3 % of 3" in await asyncio.to_thread(Path(files[0]).read_text)
