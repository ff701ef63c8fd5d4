"""Secret (server) keys for read and admin endpoints, compared in constant time; named principals
(``auth.principals``) carry roles such as ``approver:marketing``."""

from __future__ import annotations

import hmac
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


def require_caller(settings: AuthSettings, request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "Unauthorized",
            "send a secret key as 'Authorization: Bearer <key>'",
            field="Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = identify(settings, token)
    if caller is None:
        raise Problem(403, "Forbidden", "the key is not a valid secret key", field="Authorization")
    return caller


def require_secret_key(settings: AuthSettings, request: Request) -> None:
    require_caller(settings, request)
