"""Who may post and read: public form keys (bound to origins), secret keys, rate limits.

- ``POST /v1/leads`` takes a public key (``X-API-Key`` header, ``key`` query or form field) or a
  secret key (``Authorization: Bearer``, for server-side form backends). Public-key and anonymous
  posts are rate limited per key and per client address; secret-key posts are not.
- Read and admin endpoints take a secret key: one made by ``leadflow keys create --kind secret``
  or one of ``LEADFLOW_AUTH__SECRET_KEYS`` / ``LEADFLOW_AUTH__PRINCIPALS``.

Rate limits (``ratelimits``) count in process memory by default: with N intake replicas a client
gets up to N times the limit. With ``intake.rate_limit_storage`` a Redis URL, every replica counts
in that Redis: one limit across them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from limits import RateLimitItem, parse

from services.intake.keys.ratelimits import RateLimits
from services.intake.keys.store import PUBLIC, SECRET, KeyInfo, KeyRing
from services.intake.settings import IntakeConfig
from shared.auth import identify
from shared.problems import Problem

BEARER_HELP = "send a secret key as 'Authorization: Bearer <key>'"


@dataclass(frozen=True, slots=True)
class Poster:
    """Who sent a submission; ``scope`` keeps their Idempotency-Keys apart from others'."""

    kind: str  # public | secret | anonymous
    scope: str
    key: KeyInfo | None = None


class Guard:
    def __init__(self, settings: IntakeConfig, keys: KeyRing) -> None:
        self.settings, self.keys = settings, keys
        intake = settings.intake
        self.per_key = _item(intake.rate_limit_per_key)
        self.per_ip = _item(intake.rate_limit_per_ip)
        self.limits = RateLimits(intake)

    async def poster(self, request: Request, form_key: str | None = None) -> Poster:
        """Authenticate a submission; raises the 401/403/429 problem."""
        if request.headers.get("authorization"):
            return await self._secret_poster(request)
        await self._limit(self.per_ip, "ip", client_address(request), field="client")
        presented, where = _public_key(request, form_key)
        if presented is None:
            if self.settings.intake.require_key:
                raise Problem(
                    401,
                    "Unauthorized",
                    "send a public key as the X-API-Key header or the `key` field, or a secret "
                    "key as 'Authorization: Bearer <key>'",
                    field="X-API-Key",
                )
            return Poster("anonymous", "anonymous")
        key = await self.keys.find(presented)
        if key is None:
            raise Problem(403, "Forbidden", "the key is not a valid API key", field=where)
        if key.kind != PUBLIC:
            raise Problem(
                403, "Forbidden", "a secret key goes in the Authorization header", field=where
            )
        origin = request_origin(request)
        if not key.allows(origin):
            shown = origin or "none (no Origin or Referer header)"
            raise Problem(
                403, "Forbidden", f"origin {shown} is not allowed for this key", field="Origin"
            )
        await self._limit(self.per_key, "key", str(key.id), field=where)
        return Poster(PUBLIC, str(key.id), key)

    async def require_secret(self, request: Request) -> Poster:
        return await self._secret_poster(request)

    async def _secret_poster(self, request: Request) -> Poster:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Problem(
                401,
                "Unauthorized",
                BEARER_HELP,
                field="Authorization",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if identify(self.settings.auth, token) is not None:
            return Poster(SECRET, "sk-" + hashlib.sha256(token.encode()).hexdigest()[:16])
        key = await self.keys.find(token)
        if key is None or key.kind != SECRET:
            raise Problem(
                403, "Forbidden", "the key is not a valid secret key", field="Authorization"
            )
        return Poster(SECRET, str(key.id), key)

    async def _limit(self, item: RateLimitItem | None, kind: str, who: str, *, field: str) -> None:
        if item is None or (wait := await self.limits.wait(item, kind, who)) is None:
            return
        raise Problem(
            429,
            "Too Many Requests",
            f"more than {item} per {kind}; retry in {wait} s",
            headers={"Retry-After": str(wait)},
            field=field,
        )


def client_address(request: Request) -> str:
    """The peer address; behind a proxy run uvicorn with --proxy-headers so this is the client."""
    return request.client.host if request.client else "unknown"


def request_origin(request: Request) -> str | None:
    """The browser's ``Origin``; for old browsers without it on form posts, the ``Referer``'s."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.rstrip("/").lower()
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}".lower()
    return None


def _public_key(request: Request, form_key: str | None) -> tuple[str | None, str]:
    header = request.headers.get("x-api-key")
    if header and header.strip():
        return header.strip(), "X-API-Key"
    query = request.query_params.get("key") if request.scope.get("query_string") else None
    for value in (query, form_key):
        if value and value.strip():
            return value.strip(), "key"
    return None, "X-API-Key"


def _item(limit: str | None) -> RateLimitItem | None:
    return parse(limit) if limit else None
