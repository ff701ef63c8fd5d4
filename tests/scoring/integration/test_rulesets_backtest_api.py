"""``POST /v1/rulesets/{version}/backtest``: the CLI's report over HTTP, secret key required."""

from __future__ import annotations

import httpx

from tests.scoring.integration.test_rulesets import as_, client, propose, runtime  # noqa: F401 — fixtures


async def test_the_backtest_endpoint_reports_against_the_active_version(
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    proposed = await propose(client)
    url = f"/v1/rulesets/{proposed['version']}/backtest"
    response = await client.post(url, params={"days": 30}, headers=as_("pat"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["proposed"] == proposed["label"]
    assert report["active"].startswith("default-")  # nothing active yet: the bundled sample
    assert (report["leads"], report["changed"]) == (0, 0)
    assert report["totals"] == dict.fromkeys(
        ("mql_active", "mql_proposed", "sql_active", "sql_proposed"), 0
    )


async def test_the_backtest_endpoint_refuses_bad_calls(
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    proposed = await propose(client)
    url = f"/v1/rulesets/{proposed['version']}/backtest"
    assert (await client.post(url)).status_code == 401
    bad = await client.post(url, params={"days": 0}, headers=as_("pat"))
    assert bad.status_code == 422
    assert "days" in bad.text
    missing = await client.post("/v1/rulesets/999/backtest", headers=as_("pat"))
    assert missing.status_code == 404
