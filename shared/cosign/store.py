"""A kind's versions: propose, approve (one signature per side), activate, compare, list.

A version's content never changes after it is proposed; an approval signs its SHA-256.
Activation re-checks both signatures against the stored content, so a version edited behind the
service's back (or signed on a different text) never goes live (``checks``). The caller owns
the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Caller
from shared.config import Settings
from shared.cosign import checks
from shared.cosign.kind import Activation, Kind
from shared.cosign.models import CosignedApproval, CosignedVersion
from shared.ids import new_id
from shared.outbox import stage
from shared.problems import Problem

Version = CosignedVersion


async def propose(
    session: AsyncSession, kind: Kind, text: str, *, by: str, note: str = "", now: datetime
) -> Version:
    validated = await kind.validate(session, text)
    same = await session.scalar(
        select(Version.version).where(
            Version.kind == kind.name, Version.content_hash == validated.content_hash
        )
    )
    if same is not None:
        raise Problem(409, "Conflict", f"version {same} has this exact content", field="content")
    latest = select(func.max(Version.version)).where(Version.kind == kind.name)
    number = int(await session.scalar(latest) or 0) + 1
    row = Version(
        id=new_id(),
        kind=kind.name,
        version=number,
        label=f"v{number}-{validated.content_hash[:8]}" if kind.labelled else None,
        name=validated.name,
        content=text,
        content_hash=validated.content_hash,
        status="proposed",
        note=note,
        proposed_by=by,
        proposed_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def find(session: AsyncSession, kind: Kind, version: int, *, lock: bool = False) -> Version:
    query = select(Version).where(Version.kind == kind.name, Version.version == version)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise Problem(404, "Not Found", f"no {kind.noun} version {version}", field="version")
    return row


async def approvals_of(session: AsyncSession, row: Version) -> list[CosignedApproval]:
    query = select(CosignedApproval).where(CosignedApproval.version_id == row.id)
    return list(await session.scalars(query.order_by(CosignedApproval.approved_at)))


async def approve(
    session: AsyncSession,
    kind: Kind,
    version: int,
    *,
    caller: Caller,
    side: str,
    signed_hash: str,
    now: datetime,
) -> CosignedApproval:
    checks.check_signer(caller, side)
    row = await find(session, kind, version, lock=True)
    checks.check_signature(
        _signed(row),
        checks.signatures(await approvals_of(session, row)),
        approver=caller.name,
        side=side,
        signed_hash=signed_hash,
    )
    approval = CosignedApproval(
        id=new_id(),
        version_id=row.id,
        side=side,
        approver=caller.name,
        content_hash=signed_hash,
        approved_at=now,
    )
    session.add(approval)
    await session.flush()
    return approval


async def activate(
    session: AsyncSession, settings: Settings, kind: Kind, version: int, *, by: str, now: datetime
) -> Version:
    """Make a co-signed version the live one: the previous one retires, the kind's own work is
    done (``Kind.on_activate``) and its event staged."""
    row = await find(session, kind, version, lock=True)
    signed = checks.check_activation(
        _signed(row), checks.signatures(await approvals_of(session, row))
    )
    approvers = {side: signature.approver for side, signature in signed.items()}
    return await _go_live(session, settings, kind, row, by=by, now=now, approvers=approvers)


async def bootstrap(
    session: AsyncSession, settings: Settings, kind: Kind, text: str, *, by: str, now: datetime
) -> bool:
    """``leadflow dev`` only: make ``text`` the live version, unsigned, when none is."""
    if await active(session, kind) is not None:
        return False
    validated = await kind.validate(session, text)
    existing = await session.scalar(
        select(Version).where(
            Version.kind == kind.name, Version.content_hash == validated.content_hash
        )
    )
    row = existing or await propose(session, kind, text, by=by, note="sample rules", now=now)
    await _go_live(session, settings, kind, row, by=f"{by} (unsigned sample)", now=now)
    return True


async def _go_live(
    session: AsyncSession,
    settings: Settings,
    kind: Kind,
    row: Version,
    *,
    by: str,
    now: datetime,
    approvers: dict[str, str] | None = None,
) -> Version:
    previous = await session.scalar(
        select(Version)
        .where(Version.kind == kind.name, Version.status == "active")
        .with_for_update()
    )
    if previous is not None:
        await session.execute(
            update(Version)
            .where(Version.id == previous.id)
            .values(status="retired", retired_at=now)
        )
    row.status, row.activated_by, row.activated_at = "active", by, now
    await session.flush()
    if kind.on_activate is not None:
        await kind.on_activate(session, row)
    event = kind.activated(Activation(row, previous, by, approvers or {}, now))
    await stage(session, settings, event)
    return row


async def active(session: AsyncSession, kind: Kind) -> Version | None:
    query = select(Version).where(Version.kind == kind.name, Version.status == "active")
    return await session.scalar(query)


async def active_version(session: AsyncSession, kind: Kind) -> int:
    row = await active(session, kind)
    if row is None:
        raise Problem(
            409, "Conflict", "no version is active; name one with ?against=", field="against"
        )
    return row.version


async def diff(session: AsyncSession, kind: Kind, old: int, new: int) -> dict[str, Any]:
    before, after = await find(session, kind, old), await find(session, kind, new)
    compared = checks.compare(
        (kind.diff_name(before), before.content, kind.rules_of(before.content)),
        (kind.diff_name(after), after.content, kind.rules_of(after.content)),
    )
    return compared | {"from": kind.diff_end(before), "to": kind.diff_end(after)}


async def history(session: AsyncSession, kind: Kind) -> list[dict[str, Any]]:
    rows = list(
        await session.scalars(
            select(Version).where(Version.kind == kind.name).order_by(Version.version.desc())
        )
    )
    signed: dict[UUID, list[CosignedApproval]] = {}
    approvals = select(CosignedApproval).where(
        CosignedApproval.version_id.in_(select(Version.id).where(Version.kind == kind.name))
    )
    for approval in await session.scalars(approvals):
        signed.setdefault(approval.version_id, []).append(approval)
    return [view(kind, row, signed.get(row.id, [])) for row in rows]


def view(kind: Kind, row: Version, approvals: Sequence[CosignedApproval]) -> dict[str, Any]:
    shown: dict[str, Any] = {"version": row.version}
    if kind.labelled:
        shown |= {"label": row.label, "name": row.name}
    shown["status"] = row.status
    if not kind.labelled:
        shown["active"] = row.status == "active"
    return shown | {
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


def _signed(row: Version) -> checks.Version:
    return checks.Version(row.version, row.status, row.content, row.content_hash)
