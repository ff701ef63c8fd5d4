"""``/healthz`` (alive), ``/readyz`` (database and broker reachable) and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import problems
from shared.runtime import Runtime
from shared.web import new_app


def health_router() -> APIRouter:
    """Health routes for an app whose ``state.runtime`` is its Runtime."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="The database and the broker are reachable",
        responses={503: {"description": "A dependency is unavailable"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        checks = await runtime.readiness()
        ready = all(result == "ok" for result in checks.values())
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def health_app(title: str, runtime: Runtime) -> FastAPI:
    """The HTTP surface of a service that has no API of its own yet: health and metrics."""
    app = new_app(title)
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(health_router())
    return app
