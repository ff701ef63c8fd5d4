"""What the SLA monitor's process starts: the consumer of lifecycle and engagement events that
opens, meets and cancels clocks, the sweep that fires their tiers as they fall due, and the
notifier that emails whoever a tier names."""

from __future__ import annotations

from services.sla_monitor.handlers import SlaHandler
from services.sla_monitor.notifier import start_notifier
from services.sla_monitor.settings import sla_config
from services.sla_monitor.sweep import Sweeper
from shared.runtime import Runtime

CONSUMER = "sla-monitor"


def start_sla_monitor(runtime: Runtime, *, name: str = CONSUMER) -> Sweeper:
    settings = sla_config(runtime.settings)
    sweeper = Sweeper(runtime.sessions, settings, on_fired=runtime.notify_relay)
    handler = SlaHandler(settings, on_opened=sweeper.wake)
    topics = [settings.topics.lifecycle, settings.topics.intake]
    runtime.start_consumer(CONSUMER, topics, handler, name=name)
    runtime.spawn(sweeper.run(), name=f"{name}-sweep")
    start_notifier(runtime)
    return sweeper
