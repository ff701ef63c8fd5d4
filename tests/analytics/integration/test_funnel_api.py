"""``GET /v1/funnel`` and ``leadflow funnel show|rebuild`` over the seven hand-computable leads
(tests/support/analytics.py), on both databases: the numbers the report gives, its filters and
grouping, and a clear problem for bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from shared.runtime import Runtime
from tests.support.analytics import ANA, apply, handler_for, leadflow, seed, story
from tests.support.common import Database, make_settings
from tests.support.intake import AUTH, client_for

PERIOD = {"from": "2026-03-01", "to": "2026-04-30"}


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    leads, batches = story()
    await seed(db, leads)
    await apply(db, handler_for(db), batches)
    runtime = Runtime.create(make_settings(db))
    try:
        yield runtime
    finally:
        await runtime.close()


def reached(group: dict) -> list[int]:
    return [stage["reached"] for stage in group["stages"]]


async def test_the_funnel_by_source_with_its_rates(runtime: Runtime) -> None:
    async with client_for(runtime, headers=AUTH) as client:
        response = await client.get("/v1/funnel", params=PERIOD | {"by": "source"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["start"], body["end"], body["group_by"]) == (
            "2026-03-01",
            "2026-04-30",
            "source",
        )
        assert reached(body["total"]) == [6, 4, 3, 2, 1]
        assert {g["group"]: reached(g) for g in body["groups"]} == {
            "google-ads": [1, 1, 0, 0, 0],
            "meta": [1, 1, 0, 0, 0],
            "web": [4, 2, 3, 2, 1],
        }
        sql = body["total"]["stages"][2]
        assert (sql["stage"], sql["in_order"], sql["in_order_rate"]["rate"]) == ("sql", 2, 0.5)
        assert sql["reached_rate"]["rate"] == 0.75 and sql["in_order_rate"]["small"] is True
        assert body["total"]["bookings_amount"] == 950.0

        filtered = await client.get(
            "/v1/funnel", params={"from": "2026-03-01", "to": "2026-03-31", "source": "web"}
        )
        assert reached(filtered.json()["total"]) == [3, 2, 2, 1, 1]
        assert filtered.json()["filters"] == {"source": "web"}
        by_owner = await client.get("/v1/funnel", params=PERIOD | {"owner": str(ANA)})
        assert reached(by_owner.json()["total"]) == [1, 1, 1, 1, 1]
        default = await client.get("/v1/funnel")  # the last 365 days, up to today
        assert reached(default.json()["total"])[0] == 6


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-05-01", "to": "2026-04-01"}, "from"),
        ({"from": "2026-13-01"}, "from"),
        ({"by": "planet"}, "by"),
        ({"owner": "ana"}, "owner"),
        ({"source": ""}, "source"),
        ({"expansion": "maybe"}, "expansion"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(
    runtime: Runtime, params: dict, field: str
) -> None:
    async with client_for(runtime, headers=AUTH) as client:
        response = await client.get("/v1/funnel", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field


async def test_attribution_credits_bookings_and_pipeline(runtime: Runtime) -> None:
    async with client_for(runtime, headers=AUTH) as client:
        response = await client.get("/v1/funnel/attribution", params=PERIOD | {"by": "campaign"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["group_by"] == "campaign"
        groups = {g["group"]: g for g in body["groups"]}
        assert groups["spring"]["bookings"]["all"] == {"count": 1, "amount": 950.0}
        assert groups[None]["pipeline"]["sales"] == {"count": 1, "amount": 500.0}
        assert body["total"]["pipeline"]["all"] == {"count": 2, "amount": 1500.0}
        bad = await client.get("/v1/funnel/attribution", params={"by": "planet"})
        assert bad.status_code == 422 and bad.json()["field"] == "by"


async def test_the_funnel_needs_a_secret_key(runtime: Runtime) -> None:
    async with client_for(runtime) as client:
        for path in ("/v1/funnel", "/v1/funnel/attribution"):
            response = await client.get(path)
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_cli_shows_the_funnel_and_rebuilds_it(
    runtime: Runtime, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    code, out = await leadflow(
        "funnel", "show", "--from", "2026-03-01", "--to", "2026-04-30", "--by", "cohort_month",
        "--json",
    )  # fmt: skip
    assert code == 0, out
    body = json.loads(out)
    assert {g["group"]: reached(g) for g in body["groups"]} == {
        "2026-03": [3, 2, 2, 1, 1],
        "2026-04": [3, 2, 1, 1, 0],
    }
    code, out = await leadflow("funnel", "show", "--from", "2026-03-01", "--to", "2026-04-30")
    assert code == 0, out
    assert "Funnel, cohorts 2026-03-01 – 2026-04-30 (UTC), in-order" in out
    assert "mql → sql: median 1 day, 0:00:00 (2)" in out
    code, out = await leadflow(
        "funnel", "attribution", "--from", "2026-03-01", "--to", "2026-04-30", "--json"
    )
    assert code == 0, out
    credited = json.loads(out)
    assert credited["total"]["bookings"]["marketing"] == {"count": 1, "amount": 950.0}
    assert [g["group"] for g in credited["groups"]] == ["web"]
    code, out = await leadflow(
        "funnel", "attribution", "--from", "2026-03-01", "--to", "2026-04-30"
    )
    assert code == 0 and "Bookings and pipeline credited, 2026-03-01 – 2026-04-30" in out
    code, out = await leadflow("funnel", "rebuild", "--json")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1]) == {"leads": 7}
    code, out = await leadflow("funnel", "show", "--from", "2026-05-01", "--to", "2026-04-01")
    assert code == 1 and "from must not be after to" in out
    code, out = await leadflow("funnel", "show", "--by", "planet")
    assert code == 2 and "one of source, campaign" in out
