"""One trace per lead: OpenTelemetry spans from the intake POST through the outbox, Kafka, every
consumer and the webhook delivery, exported over OTLP/HTTP (docs/monitoring.md, Tracing).

Off unless ``tracing.otlp_endpoint`` is set. Off, no SDK is imported, no provider exists and
``active`` stays False: each hook on a hot path (``shared.outbox.outbox_row``, the consumer's
batch, intake's writer, a webhook attempt, the HTTP middleware) is one test of that flag, and
nothing else runs (no span object, no context copied, nothing added to an event). On,
``configure`` builds a provider of this module's own (not the API's global one, which can be set
once per process: a test configures tracing and shuts it down again) with a ``BatchSpanProcessor``
whose thread exports to the collector; ``shutdown`` flushes it when the process stops.

How a lead's context travels:
- The HTTP server span (``shared.http_tracing``) continues an incoming ``traceparent``.
- Each event staged into the outbox gets a PRODUCER span ``create <topic>`` and carries that
  span's context in the CloudEvents distributed tracing extension (``traceparent``,
  ``tracestate``): it is part of the event's JSON, so it crosses the outbox and Kafka unchanged.
- A consumer opens a CONSUMER span ``process <topic>`` per event, a child of the event's
  ``traceparent`` (``consuming``). While the batch is applied, an event staged about a lead of
  the batch is created under that lead's event's span (``parent_for``): a batch holds many leads,
  so the "current span" cannot be one span, and the batch's spans are kept by subject.
- Work done later, in a task of its own, finds the context where it was kept: scoring hands its
  batch's contexts to the routing that follows its commit (``hand_over``, a bounded map in this
  process); an SLA clock and a webhook message keep theirs in a column (``traceparent_of``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.config import TopicSettings, TracingSettings
from shared.events import CloudEvent, topic_for

log = logging.getLogger(__name__)
E = TypeVar("E", bound=CloudEvent)

active = False
"""Whether spans are recorded: the one thing a hot path tests while tracing is off."""
_tracer: Tracer = trace.NoOpTracer()
_provider: Any = None
"""The SDK's ``TracerProvider`` while configured (the SDK is imported only then)."""
PROPAGATOR = TraceContextTextMapPropagator()
"""W3C Trace Context: reads and writes ``traceparent`` and ``tracestate``."""
HANDED_OVER = 10_000
"""Leads whose context scoring handed to routing and this process keeps (the oldest go first):
routing follows scoring's commit within moments, so this is many seconds of leads at 500/s."""
_handed: OrderedDict[str, Context] = OrderedDict()
SCOPE = "leadflow"


def configure(settings: TracingSettings, service: str) -> bool:
    """Record and export spans if ``settings`` names a collector, as ``service`` unless
    ``settings.service_name`` says otherwise; returns whether tracing is on."""
    global active, _provider, _tracer
    if settings.traces_url is None:
        return False
    # Imported here: a process with tracing off never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    shutdown()
    resource = Resource.create({"service.name": settings.service_name or service})
    sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.traces_url)))
    _provider, _tracer, active = provider, provider.get_tracer(SCOPE), True
    log.info("tracing: spans of %s exported to %s", service, settings.traces_url)
    return True


def flush(timeout_ms: int = 30_000) -> bool:
    """Export every span ended so far (the batch processor otherwise sends every few seconds)."""
    return bool(_provider.force_flush(timeout_ms)) if _provider is not None else True


def shutdown() -> None:
    """Stop recording; export what is still queued (blocks up to the exporter's timeout)."""
    global active, _provider, _tracer
    provider, _provider = _provider, None
    active, _tracer = False, trace.NoOpTracer()
    _handed.clear()
    if provider is not None:
        provider.shutdown()


# --- contexts -------------------------------------------------------------------------------


def extracted(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The remote span context a ``traceparent`` names; None if absent or malformed."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = PROPAGATOR.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def carrier_of(context: Context) -> dict[str, str]:
    """``traceparent`` (and ``tracestate`` if any) of the span in ``context``; {} for none."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=context)
    return carrier


def current() -> Context | None:
    """The current context if a live span is in it (to carry into another task), else None."""
    return otel_context.get_current() if _live(trace.get_current_span()) else None


def _live(span: Span) -> bool:
    """A span to parent new work on: valid and not ended (one not sampled cannot tell, and is
    taken: its children must not be sampled either). A long-lived task may have inherited the
    span of the request or batch that started it, long ended."""
    context = span.get_span_context()
    return context.is_valid and (span.is_recording() or not context.trace_flags.sampled)


@dataclass(frozen=True, slots=True)
class _Batch:
    by_subject: Mapping[str, Context]
    by_event: Mapping[UUID, Context]


_batch: ContextVar[_Batch | None] = ContextVar("leadflow_trace_batch", default=None)


def parent_for(subject: str | None) -> Context:
    """Where an event about ``subject`` is created: under the span of the batch's event about the
    same subject (the consumer's), else the current span (an HTTP request's), else the context
    scoring handed over for that lead (routing, after scoring's commit), else a new trace."""
    batch = _batch.get()
    if batch is not None and subject is not None and subject in batch.by_subject:
        return batch.by_subject[subject]
    if _live(trace.get_current_span()):
        return otel_context.get_current()
    if subject is not None and subject in _handed:
        return _handed[subject]
    return Context()


def hand_over() -> None:
    """Keep the current batch's contexts by lead, for work on those leads that follows the
    commit in another task (scoring's pending router). Called only with tracing on."""
    batch = _batch.get()
    if batch is None:
        return
    for subject, context in batch.by_subject.items():
        _handed[subject] = context
        _handed.move_to_end(subject)
    while len(_handed) > HANDED_OVER:
        _handed.popitem(last=False)


def traceparent_of(event: CloudEvent) -> str | None:
    """The ``traceparent`` to keep with work that ``event`` leaves for later (a webhook message,
    an SLA clock): the span of this batch that applies it, else the event's own."""
    batch = _batch.get()
    context = batch.by_event.get(event.id) if batch is not None else None
    if context is None:
        context = extracted(event.traceparent, event.tracestate)
    return carrier_of(context).get("traceparent") if context is not None else None


def traceparent_for(subject: str) -> str | None:
    """The ``traceparent`` of where an event about ``subject`` would be created now (None: it
    would begin a trace)."""
    return carrier_of(parent_for(subject)).get("traceparent")


# --- spans ----------------------------------------------------------------------------------


def _event_attributes(event: CloudEvent, topic: str, operation: str) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": topic,
        "messaging.message.id": str(event.id),
        "cloudevents.event_id": str(event.id),
        "cloudevents.event_source": event.source,
        "cloudevents.event_type": event.type,
    }
    if event.subject is not None:
        attributes["cloudevents.event_subject"] = event.subject
    return attributes


def stamped(event: E, topic: str, parent: Context | None = None) -> E:
    """``event`` with the context of a new PRODUCER span ``create <topic>`` in its
    ``traceparent`` and ``tracestate``; the span's parent is ``parent``, else ``parent_for`` the
    event's subject. The span ends at once: the relay publishes later, in a batch."""
    where = parent_for(event.subject) if parent is None else parent
    if _unsampled(where):  # nothing would be recorded: pass the decision on, make no span
        return event.model_copy(update=carrier_of(where))
    attributes = _event_attributes(event, topic, "create")
    span = _tracer.start_span(
        f"create {topic}", context=where, kind=SpanKind.PRODUCER, attributes=attributes
    )
    span.end()
    carrier = carrier_of(trace.set_span_in_context(span))
    return event.model_copy(update=carrier) if carrier else event


def _unsampled(context: Context) -> bool:
    """A context of a trace that is not recorded: its hops need no span of their own (the
    sampler would only make a non-recording one), only its ``traceparent`` passed on."""
    span_context = trace.get_current_span(context).get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


class Consuming:
    """The CONSUMER spans of one batch: one ``process <topic>`` span per event applied, a child
    of the event's ``traceparent``, open from when the batch's new events are known (``start``)
    until its transaction has committed or failed (``end``). Meanwhile the spans are found by
    subject and by event id (``parent_for``, ``traceparent_of``); a batch of one event also makes
    its span the current one, so that log lines carry its trace id. An event of a trace that is
    not sampled gets no span: its context is passed on as it came."""

    def __init__(self, group: str, topics: TopicSettings) -> None:
        self.group = group
        self.topics = topics
        self.spans: list[Span] = []
        self._batch: Token[_Batch | None] | None = None
        self._attached: Token[Context] | None = None

    def start(self, events: Sequence[CloudEvent]) -> None:
        if not events:
            return
        by_subject: dict[str, Context] = {}
        by_event: dict[UUID, Context] = {}
        for event in events:
            parent = extracted(event.traceparent, event.tracestate) or Context()
            context = parent if _unsampled(parent) else self._span(event, parent, len(events))
            by_event[event.id] = context
            if event.subject is not None:
                by_subject[event.subject] = context
        self._batch = _batch.set(_Batch(by_subject, by_event))
        if len(events) == 1:
            self._attached = otel_context.attach(by_event[events[0].id])

    def _span(self, event: CloudEvent, parent: Context, count: int) -> Context:
        topic = topic_for(event, self.topics)
        attributes = _event_attributes(event, topic, "process")
        attributes["messaging.consumer.group.name"] = self.group
        if count > 1:
            attributes["messaging.batch.message_count"] = count
        span = _tracer.start_span(
            f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        self.spans.append(span)
        return trace.set_span_in_context(span, Context())

    def end(self, error: BaseException | None = None) -> None:
        if self._attached is not None:
            otel_context.detach(self._attached)
            self._attached = None
        if self._batch is not None:
            _batch.reset(self._batch)
            self._batch = None
        for span in self.spans:
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{error.__class__.__name__}"))
            span.end()
        self.spans.clear()


@contextmanager
def consuming(group: str, topics: TopicSettings) -> Iterator[Consuming]:
    """A batch's ``Consuming``, its spans ended (with the error, if the block raised) on exit."""
    spans = Consuming(group, topics)
    try:
        yield spans
    except BaseException as error:
        spans.end(error)
        raise
    spans.end()


def client_span(name: str, parent: str | None, attributes: Mapping[str, Any]) -> Span:
    """A CLIENT span under the context a stored ``traceparent`` names (else a new trace)."""
    return _tracer.start_span(
        name,
        context=extracted(parent) or Context(),
        kind=SpanKind.CLIENT,
        attributes=dict(attributes),
    )


def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> Span:
    """A SERVER span continuing the request's ``traceparent`` (else a new trace)."""
    parent = extracted(headers.get("traceparent"), headers.get("tracestate"))
    return _tracer.start_span(
        name, context=parent or Context(), kind=SpanKind.SERVER, attributes=dict(attributes)
    )


def inject(span: Span, headers: MutableMapping[str, str]) -> None:
    """``traceparent`` (and ``tracestate``) of ``span`` into outgoing headers."""
    headers.update(carrier_of(trace.set_span_in_context(span, Context())))


# --- logs -----------------------------------------------------------------------------------


def add_trace_ids(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the span recording, if any."""
    if active:
        span = trace.get_current_span()
        if span.is_recording():
            context = span.get_span_context()
            event_dict["trace_id"] = format(context.trace_id, "032x")
            event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict
