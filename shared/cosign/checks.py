"""Co-signed versions of rules: the checks that let a proposed version go live only when one
approver from marketing and one from sales have signed its exact content (SHA-256).

Every kind of co-signed configuration (qualification rulesets, routing rules) asks these
questions before ``store`` writes. Pure: no I/O; a refusal is a ``Problem`` naming the field at
fault.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Caller
from shared.problems import Problem

SIDES = ("marketing", "sales")


class ApprovalRequest(BaseModel):
    """A signature as posted to the approvals endpoint of either kind of rules."""

    model_config = ConfigDict(extra="forbid")
    side: Literal["marketing", "sales"]
    content_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the content you reviewed"
    )


@dataclass(frozen=True, slots=True)
class Version:
    """What the checks need of a stored version: its number, status and content as stored."""

    number: int
    status: str
    """proposed, active or retired: only a proposed version can be signed or activated"""
    content: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class Signature:
    side: str
    approver: str
    content_hash: str


class Approval(Protocol):
    """A stored approval, of either kind of rules."""

    side: str
    approver: str
    content_hash: str


def signatures(approvals: Iterable[Approval]) -> list[Signature]:
    return [Signature(a.side, a.approver, a.content_hash) for a in approvals]


def compare(
    before: tuple[Any, str, Mapping[str, Any]], after: tuple[Any, str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Two versions side by side, each as (name, content, its rules by id): the rules added,
    removed and changed, and a unified diff of the content."""
    (old, old_text, old_rules), (new, new_text, new_rules) = before, after
    text = "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=str(old),
            tofile=str(new),
        )
    )
    both = old_rules.keys() & new_rules.keys()
    return {
        "from": old,
        "to": new,
        "added": sorted(new_rules.keys() - old_rules.keys()),
        "removed": sorted(old_rules.keys() - new_rules.keys()),
        "changed": sorted(k for k in both if old_rules[k] != new_rules[k]),
        "diff": text,
    }


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_signer(caller: Caller, side: str) -> None:
    """The caller may sign for ``side``: it holds the role ``approver:<side>``."""
    if side not in SIDES:
        raise Problem(422, "Unprocessable Content", f"side is one of {SIDES}", field="side")
    if f"approver:{side}" not in caller.roles:
        detail = f"{caller.name} does not hold the role approver:{side}"
        raise Problem(403, "Forbidden", detail, field="side")


def check_signature(
    version: Version,
    signatures: Iterable[Signature],
    *,
    approver: str,
    side: str,
    signed_hash: str,
) -> None:
    """``approver`` may sign ``version`` for ``side`` on ``signed_hash``: still proposed, the
    content reviewed is the content stored, the side not yet signed, the person on no other side."""
    _proposed(version)
    check_unchanged(version, signed_hash, "content_hash")
    for signature in signatures:
        if signature.side == side:
            detail = f"{signature.approver} already approved version {version.number} for {side}"
            raise Problem(409, "Conflict", detail, field="side")
        if signature.approver == approver:
            detail = f"{approver} already signed for {signature.side}; one person, one side"
            raise Problem(409, "Conflict", detail, field="side")


def check_activation(version: Version, signatures: Iterable[Signature]) -> dict[str, Signature]:
    """Both sides signed this exact content, which is still what is stored: the signatures by
    side. Checked again at activation, so content edited behind the service's back never goes
    live."""
    _proposed(version)
    signed = {s.side: s for s in signatures}
    missing = [side for side in SIDES if side not in signed]
    if missing:
        detail = f"version {version.number} lacks the approval of {' and '.join(missing)}"
        raise Problem(409, "Conflict", detail, field="version")
    for signature in signed.values():
        check_unchanged(version, signature.content_hash, "version")
    return signed


def check_unchanged(version: Version, signed_hash: str, field: str) -> None:
    if content_hash(version.content) != version.content_hash:
        detail = f"version {version.number}'s content was altered"
        raise Problem(409, "Conflict", detail, field=field)
    if signed_hash != version.content_hash:
        detail = f"version {version.number} is {version.content_hash}, not the content signed"
        raise Problem(409, "Conflict", detail, field=field)


def _proposed(version: Version) -> None:
    if version.status != "proposed":
        detail = f"version {version.number} is {version.status}"
        raise Problem(409, "Conflict", detail, field="version")
