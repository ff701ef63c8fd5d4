"""What the OpenAPI fuzzer (schemathesis) found answered 500, or 2xx for input the document
refuses: each is now a 4xx problem that names the field. On both databases, through the app.

The fuzzer itself runs in test_openapi_fuzz.py; these pin each finding so that a change that
brings one back fails here, with its own name, whatever the fuzzer draws.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.params import MAX_VERSION
from tests.support.common import Database
from tests.support.intake import client_for, intake

AUTH = {"Authorization": "Bearer sk_test"}
LEAD = "01a2507b-a9b8-73ff-b0fd-04c5f88d1cca"

REFUSED: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    # A version beyond the column's 32-bit integer reached the database.
    ("GET", f"/v1/rulesets/{MAX_VERSION + 1}", None, 422, "version"),
    ("GET", f"/v1/routing/rulesets/{2**64}/diff", None, 422, "version"),
    ("POST", f"/v1/sla/policies/{2**70}/activate", None, 422, "version"),
    ("POST", f"/v1/rulesets/{2**100}/backtest", None, 422, "version"),
    ("GET", "/v1/goals/versions/1/diff?against=0", None, 422, "against"),
    # Year 0 is no year: month arithmetic raised.
    ("GET", "/v1/reports/monthly/0000-01", None, 422, "month"),
    ("GET", "/v1/goals/progress?to=0000-01", None, 422, "to"),
    # `0` was read as the Unix epoch, a day or a time the document says is text.
    ("GET", "/v1/funnel?to=0", None, 422, "to"),
    ("GET", "/v1/funnel?from=0001-01-01", None, 422, "from"),
    ("GET", "/v1/sla/breaches?since=0", None, 422, "since"),
    ("POST", f"/v1/leads/{LEAD}/activities", {"type": "visit", "occurred_at": 0}, 422,
     "occurred_at"),
    # A boolean was read as a number, a number as a boolean.
    ("POST", "/v1/owners", {"email": "a@example.com", "name": "A", "max_per_day": False}, 422,
     "max_per_day"),
    # Rates near zero made the reverse funnel's divisions infinite.
    ("GET", "/v1/plan?target=1&deal_size=5e-324&inquiry_to_mql=5e-324", None, 422, "deal_size"),
    # An unknown owner email in a reassignment was an unhandled domain error.
    ("POST", f"/v1/leads/{LEAD}/reassign", {"owner_email": "x@example.com", "reason": "away"}, 422,
     "owner_email"),
    # A body of another media type than JSON on a JSON route.
    ("POST", "/v1/teams", "name=x", 415, "Content-Type"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), REFUSED)
async def test_fuzzer_findings_are_problems_naming_the_field(
    db: Database, method: str, path: str, body: Any, status: int, field: str
) -> None:
    async with intake(db) as runtime, client_for(runtime, headers=AUTH) as client:
        if isinstance(body, str):
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            answer = await client.request(method, path, content=body, headers=headers)
        else:
            answer = await client.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field


async def test_a_wrong_method_names_every_method_the_path_serves(db: Database) -> None:
    """Starlette's 405 named the methods of the first route that matched; each method of a path
    is a route of its own here."""
    async with intake(db) as runtime, client_for(runtime, headers=AUTH) as client:
        answer = await client.put("/v1/accounts")
        id_shaped = await client.patch("/v1/subscriptions/attempts")
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) >= {"GET", "POST"}
    # A static segment is not taken for an id: the route exists, without that method.
    assert id_shaped.status_code in (404, 405)


async def test_the_document_names_every_problem_as_problem_json(db: Database) -> None:
    async with intake(db) as runtime, client_for(runtime) as client:
        document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= set(responses), (method, path)
            if path.startswith("/v1/"):
                assert "503" in responses, (method, path)
