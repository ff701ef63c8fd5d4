"""Leadflow's apps keep FastAPI's native OpenTelemetry off: with a global tracer provider set
(as an auto-instrumentation wrapper sets one), a plain FastAPI app records a SERVER span of its
own per request, which beside Leadflow's (``shared/http_tracing.py``) would put two in a trace."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.web import new_app


@pytest.mark.parametrize("made_by", ["new_app", "plain FastAPI (control)"])
async def test_no_fastapi_span_with_a_global_tracer_provider(
    monkeypatch: pytest.MonkeyPatch, made_by: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    app = new_app("t") if made_by == "new_app" else FastAPI()

    @app.post("/things")
    async def create() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/things")).status_code == 200
    spans = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert len(spans) == (0 if made_by == "new_app" else 1)
