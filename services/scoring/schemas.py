"""Scoring's HTTP bodies: a ruleset text to validate or propose (its responses are the co-signed
versions' views, shared/cosign)."""

from __future__ import annotations

from pydantic import Field

from shared.cosign.kind import MAX_CONTENT, Proposal


class RulesetText(Proposal):
    content: str = Field(min_length=1, max_length=MAX_CONTENT, description="The ruleset YAML")
