"""Fixtures of the analytics tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.runtime import Runtime
from tests.support.analytics import live
from tests.support.common import Database, make_settings


@pytest.fixture
async def live_runtime(db: Database) -> AsyncIterator[Runtime]:
    """A runtime on the seven leads with the live goals (tests/support/analytics.py)."""
    await live(db)
    runtime = Runtime.create(make_settings(db))
    try:
        yield runtime
    finally:
        await runtime.close()
