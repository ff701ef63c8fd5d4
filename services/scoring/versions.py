"""Ruleset versions: propose, approve (one signature per side), activate, compare, list.

A version's content never changes after it is proposed; an approval signs its SHA-256. Activation
re-checks both signatures against the stored content, so a version edited behind the service's
back (or signed on a different text) never goes live (the checks: shared/cosign.py, which routing
rules share). The caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import Ruleset, RulesetApproval
from services.scoring.ruleset import RulesetInvalid, compile_ruleset
from shared import cosign
from shared.auth import Caller
from shared.config import Settings
from shared.events import RulesetActivated, RulesetActivatedData
from shared.ids import new_id
from shared.outbox import stage
from shared.problems import Problem

SOURCE = "/leadflow/scoring"
BOOTSTRAP = "leadflow-dev"


def invalid(error: RulesetInvalid) -> Problem:
    problems = [{"rule": p.rule, "line": p.line, "reason": p.reason} for p in error.problems]
    detail = f"the ruleset is invalid: {error}"
    return Problem(422, "Invalid ruleset", detail, field="content", problems=problems)


async def propose(
    session: AsyncSession, text: str, *, by: str, note: str = "", now: datetime
) -> Ruleset:
    try:
        compiled = compile_ruleset(text)
    except RulesetInvalid as error:
        raise invalid(error) from None
    same = await session.scalar(
        select(Ruleset.version).where(Ruleset.content_hash == compiled.content_hash)
    )
    if same is not None:
        raise Problem(409, "Conflict", f"version {same} has this exact content", field="content")
    version = int(await session.scalar(select(func.max(Ruleset.version))) or 0) + 1
    row = Ruleset(
        id=new_id(),
        version=version,
        label=f"v{version}-{compiled.content_hash[:8]}",
        name=compiled.spec.name,
        content=text,
        content_hash=compiled.content_hash,
        status="proposed",
        note=note,
        proposed_by=by,
        proposed_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def find(session: AsyncSession, version: int, *, lock: bool = False) -> Ruleset:
    query = select(Ruleset).where(Ruleset.version == version)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise Problem(404, "Not Found", f"no ruleset version {version}", field="version")
    return row


async def approvals_of(session: AsyncSession, row: Ruleset) -> list[RulesetApproval]:
    query = select(RulesetApproval).where(RulesetApproval.ruleset_id == row.id)
    return list(await session.scalars(query.order_by(RulesetApproval.approved_at)))


def signed_version(row: Ruleset) -> cosign.Version:
    return cosign.Version(row.version, row.status, row.content, row.content_hash)


async def approve(
    session: AsyncSession,
    version: int,
    *,
    caller: Caller,
    side: str,
    signed_hash: str,
    now: datetime,
) -> RulesetApproval:
    cosign.check_signer(caller, side)
    row = await find(session, version, lock=True)
    cosign.check_signature(
        signed_version(row),
        cosign.signatures(await approvals_of(session, row)),
        approver=caller.name,
        side=side,
        signed_hash=signed_hash,
    )
    approval = RulesetApproval(
        id=new_id(),
        ruleset_id=row.id,
        side=side,
        approver=caller.name,
        content_hash=signed_hash,
        approved_at=now,
    )
    session.add(approval)
    await session.flush()
    return approval


async def activate(
    session: AsyncSession, settings: Settings, version: int, *, by: str, now: datetime
) -> Ruleset:
    row = await find(session, version, lock=True)
    signed = cosign.check_activation(
        signed_version(row), cosign.signatures(await approvals_of(session, row))
    )
    return await _go_live(session, settings, row, by=by, now=now, signed=signed)


async def _go_live(
    session: AsyncSession,
    settings: Settings,
    row: Ruleset,
    *,
    by: str,
    now: datetime,
    signed: dict[str, cosign.Signature],
) -> Ruleset:
    previous = await session.scalar(
        select(Ruleset).where(Ruleset.status == "active").with_for_update()
    )
    if previous is not None:
        await session.execute(
            update(Ruleset)
            .where(Ruleset.id == previous.id)
            .values(status="retired", retired_at=now)
        )
    row.status, row.activated_by, row.activated_at = "active", by, now
    await session.flush()
    data = RulesetActivatedData(
        version=row.version,
        label=row.label,
        content_hash=row.content_hash,
        previous=previous.label if previous else None,
        activated_by=by,
        approvers={side: a.approver for side, a in signed.items()},
    )
    event = RulesetActivated(
        source=SOURCE, subject=row.label, time=now, data=data, ruleset=row.label
    )
    await stage(session, settings, event)
    return row


async def bootstrap(session: AsyncSession, settings: Settings, text: str, *, now: datetime) -> bool:
    """``leadflow dev`` only: make the sample ruleset active when no version is."""
    if await session.scalar(select(Ruleset.id).where(Ruleset.status == "active")) is not None:
        return False
    compiled = compile_ruleset(text)
    existing = await session.scalar(
        select(Ruleset).where(Ruleset.content_hash == compiled.content_hash)
    )
    row = existing or await propose(session, text, by=BOOTSTRAP, note="sample rules", now=now)
    await _go_live(session, settings, row, by=f"{BOOTSTRAP} (unsigned sample)", now=now, signed={})
    return True


async def diff(session: AsyncSession, old: int, new: int) -> dict[str, Any]:
    before, after = await find(session, old), await find(session, new)
    return cosign.compare(
        (before.label, before.content, _rules(before.content)),
        (after.label, after.content, _rules(after.content)),
    )


def _rules(text: str) -> dict[str, Any]:
    spec = compile_ruleset(text).spec
    rules = spec.fit.rules + spec.engagement.rules + spec.disqualify + spec.recycle
    found: dict[str, Any] = {r.id: r.model_dump() for r in rules}
    found.update({f"stages.{k}": v for k, v in spec.stages.model_dump().items()})
    found["fit.grades"] = spec.fit.grades
    return found


async def history(session: AsyncSession) -> list[dict[str, Any]]:
    rows = list(await session.scalars(select(Ruleset).order_by(Ruleset.version.desc())))
    signed: dict[Any, list[RulesetApproval]] = {}
    for approval in await session.scalars(select(RulesetApproval)):
        signed.setdefault(approval.ruleset_id, []).append(approval)
    return [view(row, signed.get(row.id, [])) for row in rows]


def view(row: Ruleset, approvals: list[RulesetApproval]) -> dict[str, Any]:
    return {
        "version": row.version,
        "label": row.label,
        "name": row.name,
        "status": row.status,
        "content_hash": row.content_hash,
        "note": row.note,
        "proposed_by": row.proposed_by,
        "proposed_at": row.proposed_at,
        "approvals": [
            {"side": a.side, "approver": a.approver, "approved_at": a.approved_at}
            for a in sorted(approvals, key=lambda a: a.side)
        ],
        "activated_by": row.activated_by,
        "activated_at": row.activated_at,
        "retired_at": row.retired_at,
    }
