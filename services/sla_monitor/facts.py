"""What an SLA policy's condition sees of a lead: the ``lead`` map. Every key is always present
(text "" when unknown, numbers 0), so a condition never fails on a missing field. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.conditions import merged_answers


def sla_facts(
    lead: Any,
    submissions: Iterable[Mapping[str, Any]] = (),
    *,
    team: str | None = None,
    is_expansion: bool | None = None,
) -> dict[str, Any]:
    """A lead row, its inquiries' submissions (later answers win) and the routing decision."""
    merged = merged_answers(submissions)
    expansion = lead.is_expansion if is_expansion is None else is_expansion
    return {
        "stage": lead.stage or "",
        "grade": lead.fit_grade or "",
        "score": int(lead.score or 0),
        "engagement": int(lead.engagement_score or 0),
        "source": lead.source or "",
        "country": (lead.country or str(merged.get("country") or "")).upper(),
        "segment": str(merged.get("segment") or "").lower(),
        "employees": _int(merged.get("employees", merged.get("company_size"))),
        "team": team or "",
        "is_expansion": bool(expansion),
        "is_test": bool(lead.is_test),
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
