"""Before a co-signed ruleset is live, nothing is scored by rules nobody signed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.scoring.explain import explain
from services.scoring.store import RulesetCache, bundled_default
from shared.consumer import NotReady, is_transient
from shared.ids import new_id
from shared.models import Lead
from shared.problems import Problem
from tests.support.common import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_no_active_version_makes_the_consumer_wait_and_explain_say_so(db: Database) -> None:
    lead_id = new_id()
    async with db.sessions.begin() as session:
        session.add(Lead(id=lead_id, source="web", stage="inquiry", created_at=NOW, updated_at=NOW))
    cache = RulesetCache()
    async with db.sessions() as session:
        with pytest.raises(NotReady) as waiting:
            await cache.active(session)
        assert is_transient(waiting.value)  # waited out by the consumer, never dead-lettered
        # A backtest before the first version compares with the bundled sample.
        assert await cache.active_or_sample(session) == bundled_default()
        with pytest.raises(Problem) as refused:
            await explain(session, lead_id, cache, now=NOW)
    assert refused.value.status == 409
    assert "not scored yet" in str(refused.value.detail)
