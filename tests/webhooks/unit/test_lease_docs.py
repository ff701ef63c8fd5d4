"""How long a dead webhooks process's leases last, as the operators' pages say: the dispatcher's
and the CRM sync's leases with the default settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.settings import load_settings
from services.webhooks.crm.sync import CrmSync
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.settings import webhooks_config

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "deploy" / "README.md", ROOT / "docs" / "webhooks.md"]


def test_the_default_leases_are_45_and_75_seconds() -> None:
    settings = webhooks_config(load_settings())
    assert settings.webhooks.timeout_s == 15.0
    assert Dispatcher(async_sessionmaker(), settings).lease == timedelta(seconds=45)
    assert CrmSync(async_sessionmaker(), settings).lease == timedelta(seconds=75)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_the_pages_state_the_leases(page: Path) -> None:
    text = " ".join(page.read_text().split())  # one line: a phrase may wrap
    assert "`LEADFLOW_WEBHOOKS__TIMEOUT_S` + 30 s" in text
    assert "**45 s**" in text and "75 s" in text
