"""``intake.rate_limit_storage``: which URLs it takes, and that its password shows nowhere."""

from __future__ import annotations

import pytest

from services.intake.keys.ratelimits import RateLimits, shown
from services.intake.settings import IntakeSettings
from services.settings import load_settings
from shared.config import SettingsError


@pytest.mark.parametrize(
    ("url", "shared"),
    [
        (None, False),
        ("", False),
        ("memory://", False),
        ("redis://:pw@cache.internal:6379/0", True),
        ("rediss://user:pw@cache.internal:6380/1", True),
        ("redis+unix:///run/redis.sock?db=0", True),
    ],
)
def test_storage_urls_taken(url: str | None, shared: bool) -> None:
    limits = RateLimits(IntakeSettings(rate_limit_storage=url))
    assert limits.shared is shared
    assert "pw" not in limits.where


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("memcached://:pw@cache:11211", "not memcached://"),
        ("cache.internal:6379", "not a text without a scheme"),
        ("user:pw@cache.internal", "not a text without a scheme"),
    ],
)
def test_other_storages_are_refused_without_echoing_the_url(url: str, named: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(intake={"rate_limit_storage": url})
    message = str(error.value)
    assert "LEADFLOW_INTAKE__RATE_LIMIT_STORAGE" in message and named in message
    assert "pw" not in message


def test_the_password_shows_neither_in_the_settings_nor_in_logs() -> None:
    settings = load_settings(intake={"rate_limit_storage": "redis://:s3cr3t@cache:6379/0"})
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())
    assert shown("redis://:s3cr3t@cache:6379/0") == "redis://***@cache:6379/0"
    assert shown("rediss://me:s3cr3t@cache:6380/2?ssl_cert_reqs=none") == (
        "rediss://***@cache:6380/2"
    )
    assert shown("redis://cache:6379/0") == "redis://cache:6379/0"
