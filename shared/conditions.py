"""Conditions over a lead, as routing rules and SLA policies write them: what a lead's forms
said, and the check a CEL condition passes before it may go live. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cel


def merged_answers(submissions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A lead's inquiries' submissions, oldest first, as one map: later answers win, and a
    form's own fields win over its ``custom`` ones; empty answers are left out."""
    merged: dict[str, Any] = {}
    for submission in submissions:
        merged.update({k: v for k, v in (submission.get("custom") or {}).items() if v is not None})
        merged.update({k: v for k, v in submission.items() if k != "custom" and v is not None})
    return merged


def condition_problem(source: str, samples: Sequence[Mapping[str, Any]]) -> str | None:
    """Why ``source`` cannot be a condition over ``lead`` (it does not parse, names another
    variable, fails or is not a boolean on one of the sample leads); None if it can."""
    try:
        program = cel.compile(source)
    except ValueError as error:
        return f"does not parse: {str(error).splitlines()[0][:200]}"
    unknown = sorted(set(program.references()["variables"]) - {"lead"})
    if unknown:
        return f"unknown variable {unknown[0]!r}; conditions see `lead`"
    for facts in samples:
        try:
            value = program.execute({"lead": facts})
        except Exception as error:  # noqa: BLE001 — any failure here is the condition's fault
            return f"does not type-check: {str(error).splitlines()[0][:200]}"
        if not isinstance(value, bool):
            return f"must be true or false, not {type(value).__name__}"
    return None
