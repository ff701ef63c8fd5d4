"""What makes one kind of co-signed configuration what it is; the rest is common."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from shared.cosign.models import CosignedVersion
from shared.events import CloudEvent

# Characters of a proposal sent over HTTP: at four bytes a character, with its note, it fits the
# default body limit (64 KiB), so the OpenAPI document states the limit the server enforces.
# The CLI reads a file of any size. (The sample rules, rules/default.yaml, are 5,343.)
MAX_CONTENT = 15_000


class Proposal(BaseModel):
    """A text to validate or propose; each kind names its own (its OpenAPI schema)."""

    model_config = ConfigDict(extra="forbid")
    content: str = Field(
        min_length=1,
        max_length=MAX_CONTENT,
        description="The text (YAML); a larger file is proposed with the CLI",
    )
    note: str = Field("", max_length=1000, description="What changes and why")


@dataclass(frozen=True)
class Validated:
    """A text that compiles: its SHA-256, the name it gives itself, and what validation tells
    the caller besides (``POST …/validate`` answers it)."""

    content_hash: str
    name: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Activation:
    """A version going live, for the event that announces it."""

    row: CosignedVersion
    previous: CosignedVersion | None
    by: str
    approvers: Mapping[str, str]
    """Side → who signed it (empty for ``leadflow dev``'s unsigned sample)."""
    now: datetime


@dataclass(frozen=True)
class Kind:
    name: str
    """What ``cosigned_versions.kind`` holds: ``qualification``, ``routing``."""
    noun: str
    """How messages name a version's kind: "no ruleset version 3"."""
    body: type[Proposal]
    """The HTTP body proposing or validating a text."""
    validate: Callable[[AsyncSession, str], Awaitable[Validated]]
    """Compile the text (and check what it names exists); raise the kind's 422 ``Problem``."""
    rules_of: Callable[[str], Mapping[str, Any]]
    """A valid text's rules by id, for ``diff``."""
    activated: Callable[[Activation], CloudEvent]
    """The event staged when a version goes live."""
    announces: str
    """That event's type, as the commands' help names it."""
    labelled: bool = False
    """Versions get a label, ``v<n>-<hash prefix>``, that leads and events carry."""
    on_activate: Callable[[AsyncSession, CosignedVersion], Awaitable[None]] | None = None
    """Work in the activation's transaction, once the version is live (before the event)."""
    validate_summary: str = "Check a text without storing it"

    def diff_name(self, row: CosignedVersion) -> str:
        return row.label if self.labelled and row.label else f"v{row.version}"

    def diff_end(self, row: CosignedVersion) -> str | int:
        """How a diff's ``from`` and ``to`` name a version: its label, or its number."""
        return row.label if self.labelled and row.label else row.version
