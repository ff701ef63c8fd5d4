"""The OpenAPI document as the app answers: every error is an RFC 9457 problem, on every route.

FastAPI documents the answers a route declares; the ones that come from around the routes are
added here, once, so that no route can forget them:

- 400 for a body that cannot be read (malformed JSON or multipart), 413 over the body limit
  (``shared.limits.BodySizeLimit``) and 415 for a body of another media type than the route
  reads, on every route that takes a body;
- 404 on every route with a path parameter (an id of the wrong shape matches no route);
- 422 on every route with a parameter or a body;
- 503 on every ``/v1/`` route: each reads or writes the database, and an outage is answered 503
  with ``Retry-After`` (``shared.problems.OutageAnswers``).

Every error answer's content is ``application/problem+json`` with the ``ProblemDetails`` schema,
replacing FastAPI's default ``HTTPValidationError`` shape, which this app never sends.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from shared.problems import PROBLEM_JSON, ProblemDetails

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
REF = {"$ref": "#/components/schemas/ProblemDetails"}
DESCRIPTIONS = {
    400: "The body could not be read (malformed JSON, form or multipart)",
    404: "No such resource (or an id of the wrong shape)",
    413: "The body is larger than the limit (LEADFLOW_HTTP__MAX_BODY_BYTES)",
    415: "The body is not of a media type this route reads",
    422: "A parameter or a field is invalid; `errors` names each",
    503: "The database is unavailable; nothing was stored, retry after `Retry-After` seconds",
}


def document_problems(app: FastAPI) -> None:
    """Wrap ``app.openapi`` (after any other wrapper) so the document names every problem."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ProblemDetails"] = ProblemDetails.model_json_schema()
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                if method in METHODS:
                    _complete(path, operation)  # idempotent: the document is cached
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    body = operation.get("requestBody", {}).get("content", {})
    parameters = operation.get("parameters", [])
    codes: list[int] = []
    if body:
        codes += [400, 413, 415]
    if any(parameter.get("in") == "path" for parameter in parameters):
        codes.append(404)
    if body or parameters:
        codes.append(422)
    if path.startswith("/v1/"):
        codes.append(503)
    for code in codes:
        responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
    for status, response in responses.items():
        if status[0] in "45":
            response["content"] = {PROBLEM_JSON: {"schema": REF} | _example(response)}
            response.setdefault("description", _phrase(status))


def _example(response: dict[str, Any]) -> dict[str, Any]:
    """An example a route wrote for its problem, kept (intake's posts name theirs)."""
    example = response.get("content", {}).get(PROBLEM_JSON, {}).get("example")
    return {"example": example} if example is not None else {}


def _phrase(code: str) -> str:
    try:
        return HTTPStatus(int(code)).phrase
    except ValueError:
        return "Error"
