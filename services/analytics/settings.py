"""The analytics service's settings, read from ``LEADFLOW_ANALYTICS__…`` (docs/configuration.md
lists them all). They define a funnel line's derived dimensions: after changing one, rebuild the
lines (``leadflow analytics rebuild``) so old leads are counted the new way too."""

from __future__ import annotations

from functools import cached_property
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from services.analytics.projection import Definitions
from shared.business_hours import zone
from shared.config import Group, Settings


class AnalyticsSettings(Group):
    time_zone: str = Field(
        "UTC",
        description="IANA zone of the reporting calendar: a lead's cohort is the day and month "
        "its first inquiry arrived there",
    )
    segments: dict[str, int] = Field(
        {"smb": 1, "mid-market": 100, "enterprise": 1000},
        description="Segment name → the fewest employees it starts at (the form's `employees` "
        "or `company_size`; a range such as 51-200 counts by its lower end). A lead below the "
        "lowest, or without a size, has no segment",
    )

    review_dir: str = Field(
        "",
        description="Where `leadflow analytics` writes each month's review (HTML, and a zip "
        "with its CSV tables) once the month is over; empty: none is written",
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)  # HoursInvalid is a ValueError: pydantic reports it as the field's error
        return value

    @field_validator("segments")
    @classmethod
    def _sizes(cls, segments: dict[str, int]) -> dict[str, int]:
        if any(size < 0 for size in segments.values()):
            raise ValueError("employee counts are 0 or more")
        if len(set(segments.values())) != len(segments):
            raise ValueError("two segments start at the same size")
        return segments

    @cached_property
    def definitions(self) -> Definitions:
        bands = tuple(sorted((size, name) for name, size in self.segments.items()))
        return Definitions(time_zone=ZoneInfo(self.time_zone), segments=bands)


class AnalyticsConfig(Settings):
    """The common settings and the analytics service's own."""

    analytics: AnalyticsSettings = AnalyticsSettings()


def analytics_config(settings: Settings) -> AnalyticsConfig:
    """``settings`` as the analytics service reads them: loaded by ``services.settings``, they
    hold its group."""
    if not isinstance(settings, AnalyticsConfig):
        raise TypeError("settings without the analytics group: load them with services.settings")
    return settings
