"""Routing rules versions: propose, approve (one signature per side), activate, compare, list.

The same lifecycle as the qualification rulesets (services/scoring/versions.py), with the same
checks (shared/cosign.py): a version's content never changes after it is proposed; it goes live
only when one approver from marketing and one from sales have signed its SHA-256, re-checked at
activation; activating emits ``routing_rules.activated`` and every ``lead.routed`` after it carries
its version. The caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.models import RoutingRuleset, RoutingRulesetApproval, Team
from services.routing.repository import touch_directory
from services.routing.rules import RoutingInvalid, compile_routing
from shared import cosign
from shared.auth import Caller
from shared.config import Settings
from shared.events import RoutingRulesActivated, RoutingRulesActivatedData
from shared.ids import new_id
from shared.outbox import stage
from shared.problems import Problem

SOURCE = "/leadflow/routing"


def invalid(error: RoutingInvalid) -> Problem:
    detail = f"the routing rules are invalid: {error}"
    return Problem(422, "Invalid routing rules", detail, field="content", errors=error.problems)


async def validate(session: AsyncSession, text: str) -> str:
    """The content's hash, if it compiles and names only teams that exist."""
    try:
        compiled = compile_routing(text)
    except RoutingInvalid as error:
        raise invalid(error) from None
    names = set(await session.scalars(select(Team.name)))
    wanted = {compiled.spec.default_queue, *(rule.team for rule in compiled.spec.rules)}
    unknown = sorted(wanted - names)
    if unknown:
        raise invalid(RoutingInvalid([f"no team named {name!r}" for name in unknown]))
    return compiled.content_hash


async def propose(
    session: AsyncSession, text: str, *, by: str, note: str = "", now: datetime
) -> RoutingRuleset:
    digest = await validate(session, text)
    same = await session.scalar(
        select(RoutingRuleset.version).where(RoutingRuleset.content_hash == digest)
    )
    if same is not None:
        raise Problem(409, "Conflict", f"version {same} has this exact content", field="content")
    version = int(await session.scalar(select(func.max(RoutingRuleset.version))) or 0) + 1
    row = RoutingRuleset(
        version=version,
        content_hash=digest,
        text=text,
        active=False,
        note=note,
        created_by=by,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def find(session: AsyncSession, version: int, *, lock: bool = False) -> RoutingRuleset:
    query = select(RoutingRuleset).where(RoutingRuleset.version == version)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise Problem(404, "Not Found", f"no routing rules version {version}", field="version")
    return row


async def approvals_of(session: AsyncSession, version: int) -> list[RoutingRulesetApproval]:
    query = select(RoutingRulesetApproval).where(RoutingRulesetApproval.ruleset_version == version)
    return list(await session.scalars(query.order_by(RoutingRulesetApproval.approved_at)))


def _signed(row: RoutingRuleset) -> cosign.Version:
    return cosign.Version(row.version, row.status, row.text, row.content_hash)


async def approve(
    session: AsyncSession,
    version: int,
    *,
    caller: Caller,
    side: str,
    signed_hash: str,
    now: datetime,
) -> RoutingRulesetApproval:
    cosign.check_signer(caller, side)
    row = await find(session, version, lock=True)
    cosign.check_signature(
        _signed(row),
        cosign.signatures(await approvals_of(session, version)),
        approver=caller.name,
        side=side,
        signed_hash=signed_hash,
    )
    approval = RoutingRulesetApproval(
        id=new_id(),
        ruleset_version=version,
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
) -> RoutingRuleset:
    """Make a co-signed version the live one: the previous one retires, every process's cached
    directory goes stale (so the next routing uses it), ``routing_rules.activated`` is staged."""
    row = await find(session, version, lock=True)
    signed = cosign.check_activation(
        _signed(row), cosign.signatures(await approvals_of(session, version))
    )
    await validate(session, row.text)  # a team it names may have gone since it was proposed
    previous = await session.scalar(
        select(RoutingRuleset.version).where(RoutingRuleset.active.is_(True)).with_for_update()
    )
    if previous is not None:
        await session.execute(
            update(RoutingRuleset)
            .where(RoutingRuleset.version == previous)
            .values(active=False, retired_at=now)
        )
    row.active, row.activated_by, row.activated_at = True, by, now
    await session.flush()
    await touch_directory(session)
    data = RoutingRulesActivatedData(
        version=row.version,
        content_hash=row.content_hash,
        previous=previous,
        activated_by=by,
        approvers={side: s.approver for side, s in signed.items()},
    )
    subject = f"routing-rules-v{row.version}"
    await stage(
        session,
        settings,
        RoutingRulesActivated(source=SOURCE, subject=subject, time=now, data=data),
    )
    return row


async def diff(session: AsyncSession, old: int, new: int) -> dict[str, Any]:
    before, after = await find(session, old), await find(session, new)
    compared = cosign.compare(
        (f"v{before.version}", before.text, _rules(before.text)),
        (f"v{after.version}", after.text, _rules(after.text)),
    )
    return compared | {"from": before.version, "to": after.version}


def _rules(text: str) -> dict[str, Any]:
    """Each rule by id, and the settings around them, for ``diff``."""
    spec = compile_routing(text).spec
    found: dict[str, Any] = {rule.id: rule.model_dump() for rule in spec.rules}
    found["default_queue"] = spec.default_queue
    found["account_match"] = spec.account_match.model_dump()
    found["reassignment"] = spec.reassignment.model_dump()
    return found


async def active_version(session: AsyncSession) -> int:
    found = await session.scalar(
        select(RoutingRuleset.version).where(RoutingRuleset.active.is_(True))
    )
    if found is None:
        raise Problem(
            409, "Conflict", "no version is active; name one with ?against=", field="against"
        )
    return int(found)


async def history(session: AsyncSession) -> list[dict[str, Any]]:
    rows = list(
        await session.scalars(select(RoutingRuleset).order_by(RoutingRuleset.version.desc()))
    )
    signed: dict[int, list[RoutingRulesetApproval]] = {}
    for approval in await session.scalars(select(RoutingRulesetApproval)):
        signed.setdefault(approval.ruleset_version, []).append(approval)
    return [view(row, signed.get(row.version, [])) for row in rows]


def view(row: RoutingRuleset, approvals: list[RoutingRulesetApproval]) -> dict[str, Any]:
    return {
        "version": row.version,
        "status": row.status,
        "active": row.active,
        "content_hash": row.content_hash,
        "note": row.note,
        "proposed_by": row.created_by,
        "proposed_at": row.created_at,
        "approvals": [
            {"side": a.side, "approver": a.approver, "approved_at": a.approved_at}
            for a in sorted(approvals, key=lambda a: a.side)
        ],
        "activated_by": row.activated_by,
        "activated_at": row.activated_at,
        "retired_at": row.retired_at,
    }
