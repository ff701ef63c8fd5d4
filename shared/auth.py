"""Secret (server) keys for read and admin endpoints, compared in constant time; named principals
(``auth.principals``) carry roles such as ``approver:marketing``."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from shared.config import AuthSettings
from shared.problems import Problem


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: a named principal, or ``admin`` for a plain secret key."""

    name: str
    roles: frozenset[str]


ADMIN = "admin"


def identify(settings: AuthSettings, token: str) -> Caller | None:
    """The caller a key belongs to; every key is compared, in constant time."""
    presented = token.strip().encode()
    found: Caller | None = None
    for key in settings.secret_keys:
        if hmac.compare_digest(presented, key.get_secret_value().encode()) and found is None:
            found = Caller(ADMIN, frozenset({ADMIN}))
    for principal in settings.principals:
        if hmac.compare_digest(presented, principal.key.get_secret_value().encode()):
            found = Caller(principal.name, frozenset(principal.roles))
    return found


SecretLookup = Callable[[str], Awaitable[Caller | None]]
"""Finds the caller of a secret key kept elsewhere (the database's API keys); set by the app
that keeps them as ``app.state.secret_lookup``."""

KeyStillActive = Callable[[Caller], Awaitable[bool]]
"""Whether a caller found by ``secret_lookup`` earlier still holds an active key (not revoked);
set beside it as ``app.state.key_still_active``."""


async def still_holds_key(request: Request, caller: Caller) -> bool:
    """Whether ``caller``, who presented a key earlier (an ops session's sign-in), still holds one:
    a configured principal with the same roles, the configured secret keys' admin while one is
    configured, or a database key not revoked since (``app.state.key_still_active``)."""
    auth = request.app.state.runtime.settings.auth
    for principal in auth.principals:
        if principal.name == caller.name:
            return frozenset(principal.roles) == caller.roles
    if caller.name == ADMIN and caller.roles == frozenset({ADMIN}):
        return bool(auth.secret_keys)
    active: KeyStillActive | None = getattr(request.app.state, "key_still_active", None)
    return active is not None and await active(caller)


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "Unauthorized",
            "send a secret key as 'Authorization: Bearer <key>'",
            field="Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


async def authenticate(request: Request) -> Caller:
    """The caller of a request sent with a secret key: a configured key or principal, else a key
    made with ``leadflow keys create --kind secret`` (``app.state.secret_lookup``)."""
    token = bearer_token(request)
    caller = identify(request.app.state.runtime.settings.auth, token)
    lookup: SecretLookup | None = getattr(request.app.state, "secret_lookup", None)
    if caller is None and lookup is not None:
        caller = await lookup(token)
    if caller is None:
        raise _forbidden()
    return caller


async def secret_key(request: Request) -> None:
    """FastAPI dependency for read and admin routes."""
    await authenticate(request)


def _forbidden() -> Problem:
    return Problem(403, "Forbidden", "the key is not a valid secret key", field="Authorization")
