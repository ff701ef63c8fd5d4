"""The handoff service's settings, read from ``LEADFLOW_HANDOFF__…`` (docs/configuration.md lists
them all). The links in ``lead.qualified`` start with ``LEADFLOW_HTTP__PUBLIC_URL``."""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.config import Group, Settings
from shared.events import LIFECYCLE_STAGES


class HandoffSettings(Group):
    stages: list[str] = Field(
        ["mql", "sql"],
        description="Stages that hand a lead to sales: reaching one with an owner or in a queue "
        'emits `lead.qualified` (JSON list, e.g. ["mql", "sal", "sql"]; empty: never)',
    )

    @field_validator("stages")
    @classmethod
    def _known(cls, stages: list[str]) -> list[str]:
        unknown = [s for s in stages if s not in LIFECYCLE_STAGES]
        if unknown:
            known = ", ".join(LIFECYCLE_STAGES)
            raise ValueError(f"unknown stage {unknown[0]!r} (the stages are: {known})")
        return list(dict.fromkeys(stages))


class HandoffConfig(Settings):
    """The common settings and the handoff service's own."""

    handoff: HandoffSettings = HandoffSettings()


def handoff_config(settings: Settings) -> HandoffConfig:
    """``settings`` as the handoff service reads them: loaded by ``services.settings``, they hold
    its group."""
    if not isinstance(settings, HandoffConfig):
        raise TypeError("settings without the handoff group: load them with services.settings")
    return settings
