"""What the CRM receiver got: each webhook's CloudEvent, when, and for which lead.

Delivery is at least once, so the same event may arrive more than once; receivers dedupe on
the CloudEvent ``id`` (also the ``webhook-id`` header), and so does this record: an event's
first arrival is when it was delivered, and the order of first arrivals is the order a
deduplicating receiver applies them in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson

from tests.support.receiver import Received


@dataclass(frozen=True)
class Delivery:
    event_id: str
    type: str
    lead_id: str
    at: float
    """``time.perf_counter()`` when the request had arrived."""
    header_id: str


@dataclass
class Deliveries:
    first: dict[str, Delivery] = field(default_factory=dict)
    """Each event's first arrival, by event id, in arrival order."""
    by_lead: dict[str, list[Delivery]] = field(default_factory=dict)
    """Each lead's events, first arrivals only, in arrival order."""
    arrivals: Counter[str] = field(default_factory=Counter)
    mislabelled: int = 0
    """Requests whose ``webhook-id`` header is not their body's CloudEvent id."""

    def record(self, request: Received) -> None:
        body = orjson.loads(request.body)
        delivery = Delivery(
            event_id=str(body["id"]),
            type=str(body["type"]),
            lead_id=str(body["subject"]),
            at=request.at,
            header_id=request.headers.get("webhook-id", ""),
        )
        if delivery.header_id != delivery.event_id:
            self.mislabelled += 1
        self.arrivals[delivery.event_id] += 1
        if delivery.event_id in self.first:
            return
        self.first[delivery.event_id] = delivery
        self.by_lead.setdefault(delivery.lead_id, []).append(delivery)

    @property
    def duplicates(self) -> int:
        """Arrivals beyond each event's first."""
        return sum(self.arrivals.values()) - len(self.arrivals)
