"""``leadflow dev``'s sample SLA policies: live (unsigned) when no version is, so a new user sees
a routed lead's clock start, its reminders and its breach within minutes."""

from __future__ import annotations

from datetime import UTC, datetime

from services.sla_monitor.versions import SLA
from shared.cosign import store
from shared.runtime import Runtime

BOOTSTRAP = "leadflow-dev"
SAMPLE_POLICIES = """\
name: Sample SLA policies (leadflow dev)
calendars:
  office:                       # an example: Mon-Fri 09:00-17:00 Berlin, German holidays
    time_zone: Europe/Berlin
    hours: "mon-fri 09:00-17:00"
    holidays: {country: DE}
calendar: always                # 24/7, so the sample's clocks run whenever you try it
contacts:
  manager: [ana@example.com]
  head_of_sales: [head-of-sales@example.com]
policies:
  - id: hot
    when: 'lead.grade == "A" || lead.score >= 70'
    first_response:
      within: 5m
      ladder:
        - {at: 50%, notify: [owner]}
        - {at: 80%, notify: [owner]}
        - {at: 100%, notify: [manager]}
        - {at: 100% + 5m, reassign: true}
        - {at: 100% + 15m, notify: [head_of_sales]}
    acceptance: {within: 1h}
    follow_up: {within: 24h}
  - id: standard
    pickup:
      within: 30m
      ladder: [{at: 100%, notify: [manager]}]
    first_response:
      within: 1h
      ladder:
        - {at: 80%, notify: [owner]}
        - {at: 100%, notify: [manager]}
        - {at: 100% + 30m, reassign: true}
    acceptance: {within: 8h}
"""


async def activate_sample_policies(runtime: Runtime) -> bool:
    async with runtime.sessions.begin() as session:
        return await store.bootstrap(
            session, runtime.settings, SLA, SAMPLE_POLICIES, by=BOOTSTRAP, now=datetime.now(UTC)
        )
