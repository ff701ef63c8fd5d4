"""Every setting of every service, as one class (composition root): the common groups
(shared/config.py) and each service's own (``services/<name>/settings.py``), read from
``LEADFLOW_…`` variables, whose names do not depend on where a group is declared."""

from __future__ import annotations

from typing import Any

from services.analytics.settings import AnalyticsConfig
from services.handoff.settings import HandoffConfig
from services.intake.settings import IntakeConfig
from services.sla_monitor.settings import SlaConfig
from services.webhooks.settings import WebhooksConfig
from shared import config


class LeadflowSettings(IntakeConfig, WebhooksConfig, SlaConfig, HandoffConfig, AnalyticsConfig):
    """What a process of any service may read; a variable no group declares is refused."""


def load_settings(**overrides: Any) -> LeadflowSettings:
    return config.load_settings(LeadflowSettings, **overrides)


def settings_reference() -> str:
    """docs/configuration.md's table (``make docs``; a test fails when they drift)."""
    return config.settings_reference(LeadflowSettings)
