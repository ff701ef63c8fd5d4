"""API keys: made once and shown once, stored as SHA-256, looked up through a short-lived cache.

Keys carry 256 bits from ``secrets``, so a plain SHA-256 is the right hash (a slow password hash
buys nothing against a key nobody can guess) and the hash can be the lookup index. The hash found
is compared again with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import ApiKey
from shared.auth import ADMIN, Caller
from shared.db import rowcount
from shared.ids import new_id

PUBLIC, SECRET = "public", "secret"
PREFIXES = {PUBLIC: "pk_", SECRET: "sk_"}
MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: UUID
    kind: str
    key_hash: str
    allowed_origins: frozenset[str]
    thank_you_url: str | None
    strict: bool = False

    def allows(self, origin: str | None) -> bool:
        """A key without origins works from anywhere; with origins, only from them."""
        return not self.allowed_origins or (origin or "") in self.allowed_origins


def new_key(kind: str) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.strip().encode()).hexdigest()


def normalize_origin(origin: str) -> str:
    """``https://Example.com/`` → ``https://example.com`` (what browsers send in ``Origin``)."""
    scheme, sep, rest = origin.strip().partition("://")
    if not sep or not rest or scheme.lower() not in {"http", "https"}:
        raise ValueError(f"{origin!r} is not an origin like https://www.example.com")
    host = rest.split("/", 1)[0].lower()
    if not host:
        raise ValueError(f"{origin!r} is not an origin like https://www.example.com")
    return f"{scheme.lower()}://{host}"


async def create_key(
    session: AsyncSession,
    *,
    kind: str,
    now: datetime,
    origins: Sequence[str] = (),
    name: str = "",
    thank_you_url: str | None = None,
    strict: bool = False,
) -> tuple[str, ApiKey]:
    """A new key (returned once, in clear) and its stored row, in the caller's transaction."""
    if kind not in PREFIXES:
        raise ValueError(f"kind must be {PUBLIC} or {SECRET}")
    if origins and kind != PUBLIC:
        raise ValueError("only public keys are bound to origins")
    key = new_key(kind)
    row = ApiKey(
        id=new_id(),
        kind=kind,
        key_hash=hash_key(key),
        prefix=key[:10],
        name=name,
        allowed_origins=sorted({normalize_origin(o) for o in origins}),
        thank_you_url=thank_you_url,
        strict=strict,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return key, row


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


async def revoke_key(session: AsyncSession, key_id: UUID, *, now: datetime) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(rowcount(result))


class KeyRing:
    """Active keys by hash, cached for ``ttl`` seconds per process (misses too, so a flood of
    bad keys costs no queries). A revoked key stops working within ``ttl``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions, self.ttl, self.clock = sessions, ttl, clock
        self._keys: dict[str, tuple[float, KeyInfo | None]] = {}
        self._origins: tuple[float, frozenset[str]] | None = None

    async def find(self, key: str) -> KeyInfo | None:
        digest = hash_key(key)
        cached = self._keys.get(digest)
        now = self.clock()
        if cached is not None and cached[0] > now:
            info = cached[1]
        else:
            info = await self._load(digest)
            if len(self._keys) >= MAX_CACHED:
                self._keys.clear()
            self._keys[digest] = (now + self.ttl, info)
        if info is None or not hmac.compare_digest(info.key_hash, digest):
            return None
        return info

    async def origins(self) -> frozenset[str]:
        """Every active public key's allowed origins (for CORS preflight, before a key is sent)."""
        now = self.clock()
        if self._origins is None or self._origins[0] <= now:
            async with self.sessions() as session:
                rows = await session.scalars(
                    select(ApiKey.allowed_origins).where(
                        ApiKey.kind == PUBLIC, ApiKey.revoked_at.is_(None)
                    )
                )
                found = frozenset(origin for origins in rows for origin in origins or ())
            self._origins = (now + self.ttl, found)
        return self._origins[1]

    async def _load(self, digest: str) -> KeyInfo | None:
        async with self.sessions() as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
        if row is None:
            return None
        origins = frozenset(row.allowed_origins or ())
        return KeyInfo(row.id, row.kind, row.key_hash, origins, row.thank_you_url, row.strict)


async def key_still_active(sessions: async_sessionmaker[AsyncSession], caller: Caller) -> bool:
    """Whether the database secret key a caller (``key:<id>``) signed in with is not revoked;
    read from the database, not the ring's cache, so a revocation bites at once."""
    kind, _, key_id = caller.name.partition(":")
    try:
        wanted = UUID(key_id)
    except ValueError:
        return False
    if kind != "key":
        return False
    async with sessions() as session:
        found = await session.scalar(
            select(ApiKey.id).where(
                ApiKey.id == wanted, ApiKey.kind == SECRET, ApiKey.revoked_at.is_(None)
            )
        )
    return found is not None


async def stored_secret_caller(keys: KeyRing, token: str) -> Caller | None:
    """A secret key made with ``leadflow keys create --kind secret`` acts as an admin key."""
    key = await keys.find(token)
    if key is None or key.kind != SECRET:
        return None
    return Caller(f"key:{key.id}", frozenset({ADMIN}))


async def dev_public_key(
    sessions: async_sessionmaker[AsyncSession], path: Path, *, now: datetime
) -> str:
    """``leadflow dev``'s public key: the one kept in ``path`` while the database knows it, else
    a new one (any origin) written there."""
    key = _read_key(path)
    if key:
        async with sessions() as session:
            known = await session.scalar(
                select(ApiKey.id).where(
                    ApiKey.key_hash == hash_key(key),
                    ApiKey.kind == PUBLIC,
                    ApiKey.revoked_at.is_(None),
                )
            )
        if known is not None:
            return key
    async with sessions.begin() as session:
        key, _ = await create_key(session, kind=PUBLIC, now=now, name="leadflow dev")
    _keep_key(path, key)
    return key


def _read_key(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def _keep_key(path: Path, key: str) -> None:
    path.write_text(key + "\n")
    path.chmod(0o600)
