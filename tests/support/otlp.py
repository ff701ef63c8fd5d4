"""A real OTLP/HTTP trace receiver on 127.0.0.1, and tracing configured to export to it.

The receiver is the standard library's threaded HTTP server, in threads of its own: the span
exporter posts from the SDK's batch thread, and ``tracing.flush`` blocks the caller until it has,
so a receiver on the event loop would wait for a loop that waits for it. ``POST /v1/traces``
bodies are decoded as the protobuf ``ExportTraceServiceRequest`` (opentelemetry-proto, which the
exporter depends on) into plain ``Span`` records.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from shared import tracing
from shared.config import TracingSettings

KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class Span:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    """'' for a root span."""
    attributes: dict[str, Any]
    status: int
    """0 unset, 1 ok, 2 error."""
    service: str


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status=span.status.code,
                        service=str(resource.get("service.name")),
                    )
                )
    return spans


class OtlpReceiver:
    """Collects the spans exported to it; ``requests`` counts the export calls."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.requests += 1
                    receiver.paths.append(self.path)
                    if self.path == "/v1/traces":
                        receiver.spans.extend(decode(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[Span]:
        """Every span exported so far (the batch processor's queue flushed first)."""
        tracing.flush()
        with self._lock:
            return list(self.spans)

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.received() if s.trace_id == trace_id]


@contextmanager
def exporting(**settings: Any) -> Iterator[OtlpReceiver]:
    """Tracing on in this process, exporting to a new receiver; off again afterwards."""
    receiver = OtlpReceiver().start()
    try:
        tracing.configure(
            TracingSettings(otlp_endpoint=receiver.endpoint, **settings), "leadflow-test"
        )
        yield receiver
    finally:
        tracing.shutdown()
        receiver.stop()
