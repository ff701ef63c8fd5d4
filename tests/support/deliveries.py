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

from tests.support.receiver import Received, Reply


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


@dataclass
class FlappingCrm:
    """The CRM endpoint as the receiver's ``respond``: it answers 200 and records the delivery,
    except while it flaps, when it answers 5xx (``"5xx"``) or drops the connection unanswered
    (``"drop"``). Only a 2xx is a delivery: what a flapping CRM got was never applied there."""

    deliveries: Deliveries = field(default_factory=Deliveries)
    mode: str = ""
    """``""`` (healthy), ``"5xx"`` or ``"drop"``."""
    flaps: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    """Requests answered 5xx or dropped, by mode."""

    def respond(self, request: Received) -> Reply:
        if self.mode == "5xx":
            self.refused[self.mode] += 1
            return Reply(status=503 if self.refused[self.mode] % 2 else 500, body=b"flapping")
        if self.mode == "drop":
            self.refused[self.mode] += 1
            return Reply(drop=True)
        self.deliveries.record(request)
        return Reply()

    def flap(self, mode: str) -> None:
        self.mode = mode
        self.flaps += 1

    def steady(self) -> None:
        self.mode = ""
