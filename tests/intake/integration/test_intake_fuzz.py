"""Property-based fuzzing of POST /v1/leads on both databases: no 5xx, every problem is
problem+json, and no accepted-but-lost submission (every 202's inquiry is stored, and nothing is
stored that was not answered 202).

Cases come from two generators: schemathesis, from the app's own OpenAPI document (JSON,
urlencoded and multipart bodies, headers, query), and a hypothesis strategy of plausible
submissions with hostile text (NUL, control characters, astral Unicode) in every field. Hypothesis
draws the cases up front (its runner is synchronous); they are then posted through the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from sqlalchemy import select

from services.api import create_app
from services.intake.engagement.schemas import OUTCOME_CASES
from shared.models import Inquiry
from tests.support.common import Database
from tests.support.intake import client_for, intake, new_key

CASES = 150
UNLIMITED = {"rate_limit_per_ip": None, "rate_limit_per_key": None}
text = st.text(max_size=40)
plausible = st.fixed_dictionaries(
    {"email": st.emails()},
    optional={
        "phone": st.one_of(st.from_regex(r"\+?[0-9 ()\-]{3,20}", fullmatch=True), text),
        "first_name": text,
        "last_name": text,
        "company": text,
        "country": st.one_of(st.sampled_from(["US", "Germany", "uk", "Atlantis"]), text),
        "website": text,
        "source": st.sampled_from(["web", "partner.site", "Bad Source!"]),
        "utm": st.fixed_dictionaries({}, optional={"source": text, "campaign": text}),
        "consent": st.fixed_dictionaries(
            {}, optional={"text": text, "flags": st.dictionaries(text, st.booleans(), max_size=3)}
        ),
        "custom": st.dictionaries(
            text, st.one_of(text, st.integers(-(2**40), 2**40), st.booleans()), max_size=4
        ),
        "_gotcha": st.one_of(st.just(""), text),
    },
)


def _draw(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    drawn: list[Any] = []

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


def _from_openapi(document: dict[str, Any], n: int) -> list[Any]:
    # Schemathesis's defaults: the project's schemathesis.toml is for the whole-API runs.
    schema = schemathesis.openapi.from_dict(document, config=SchemathesisConfig())
    operation = schema["/v1/leads"]["POST"]
    media = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]
    return _draw(st.one_of(*(operation.as_strategy(media_type=m) for m in media)), n)


def _request(case: Any, key: str, index: int) -> dict[str, Any] | None:
    """httpx arguments for a schemathesis case, with a valid key on most of them."""
    headers = {k: v for k, v in (case.headers or {}).items() if v is not None}
    if index % 4:
        headers["X-API-Key"] = key
    try:
        for value in headers.values():
            value.encode("latin-1")
    except UnicodeEncodeError:
        return None  # not a header a client can send
    body = case.body
    if case.media_type == "application/json":
        return {"json": body, "headers": headers}
    fields = {
        name: [v for v in value if v is not None] if isinstance(value, list) else value
        for name, value in (body or {}).items()
        if value is not None
    }
    fields = {k: [str(i) for i in v] if isinstance(v, list) else str(v) for k, v in fields.items()}
    if case.media_type == "multipart/form-data":
        return {"data": fields, "files": {"upload": ("a.txt", b"x")}, "headers": headers}
    return {"data": fields, "headers": headers}


async def test_fuzzed_posts_never_fail_and_never_lose_an_accepted_submission(
    db: Database,
) -> None:
    async with intake(db, intake=UNLIMITED) as runtime:
        key = await new_key(runtime)
        app = create_app(runtime)
        requests = [
            r
            for i, case in enumerate(_from_openapi(app.openapi(), CASES))
            if (r := _request(case, key, i)) is not None
        ]
        requests += [
            {"json": body, "headers": {"X-API-Key": key}} for body in _draw(plausible, CASES)
        ]
        accepted: set[str] = set()
        statuses: dict[int, int] = {}
        async with client_for(runtime, app=app) as client:
            for arguments in requests:
                response = await client.post("/v1/leads", **arguments)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code < 500, (arguments, response.text)
                if response.status_code == 202:
                    accepted.add(response.json()["inquiry_id"])
                else:
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.json()["status"] == response.status_code
        async with runtime.sessions() as session:
            stored = {str(i) for i in await session.scalars(select(Inquiry.id))}
        assert accepted == stored, statuses
        assert statuses.get(202, 0) > CASES // 4, statuses  # the accepting path was exercised
        assert len(statuses) > 2, statuses


def test_the_openapi_document_names_every_error_of_every_intake_route(tmp_path: Path) -> None:
    from services.settings import load_settings
    from shared.runtime import Runtime

    app = create_app(
        Runtime.create(load_settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/d.db"}))
    )
    document = app.openapi()
    paths = document["paths"]
    assert document["components"]["schemas"]["OutcomeIn"]["oneOf"] == OUTCOME_CASES
    post = paths["/v1/leads"]["post"]
    assert {"202", "303", "401", "403", "413", "415", "422", "429"} <= set(post["responses"])
    body = post["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"} <= set(
        body
    )
    for method in ("get", "delete"):
        responses = paths["/v1/leads/{lead_id}"][method]["responses"]
        assert {"401", "403", "404", "422"} <= set(responses)
        assert "application/problem+json" in responses["404"]["content"]
    assert "options" in paths["/v1/leads"]
    for path, operations in paths.items():
        if path.startswith("/v1/"):
            for method, operation in operations.items():
                assert "503" in operation["responses"], (method, path)
