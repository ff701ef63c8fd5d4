"""What the handoff service starts: a consumer of the lifecycle topic (it runs in the scoring
process and in ``leadflow dev``), with the parts the composition root gathered from the services
that own a lead's data."""

from __future__ import annotations

from services.handoff.handlers import HandoffHandler
from services.handoff.parts import Parts
from services.handoff.settings import handoff_config
from shared.runtime import Runtime

CONSUMER = "handoff"


def start_handoff(runtime: Runtime, parts: Parts, *, name: str = CONSUMER) -> HandoffHandler:
    settings = handoff_config(runtime.settings)
    handler = HandoffHandler(settings, parts)
    runtime.start_consumer(CONSUMER, [settings.topics.lifecycle], handler, name=name)
    return handler
