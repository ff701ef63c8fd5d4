"""The request histogram's labels from a status and a route (shared/http_metrics.py)."""

from __future__ import annotations

import pytest
from starlette.routing import Mount, Route

from shared.http_metrics import UNMATCHED, route_template, status_class


@pytest.mark.parametrize(
    ("status", "label"),
    [(101, "1xx"), (200, "2xx"), (204, "2xx"), (303, "3xx"), (404, "4xx"), (499, "4xx"),
     (500, "5xx"), (503, "5xx"), (599, "5xx"), (600, "5xx"), (99, "5xx"), (0, "5xx")],
)  # fmt: skip
def test_a_status_is_its_class_and_a_status_no_server_sends_is_a_5xx(
    status: int, label: str
) -> None:
    assert status_class(status) == label


async def _endpoint() -> None: ...


@pytest.mark.parametrize(
    ("route", "label"),
    [
        (Route("/v1/leads/{lead_id:uuid}", _endpoint), "/v1/leads/{lead_id}"),
        (Route("/healthz", _endpoint), "/healthz"),
        (Mount("/static", routes=[]), "/static/{path}"),
        (None, UNMATCHED),
        (object(), UNMATCHED),
    ],
)
def test_a_route_is_its_template_never_a_path(route: object, label: str) -> None:
    assert route_template(route) == label
