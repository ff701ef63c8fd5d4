"""Secret (server) keys for read and admin endpoints, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from shared.config import AuthSettings
from shared.problems import Problem


def require_secret_key(settings: AuthSettings, request: Request) -> None:
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
    presented = token.strip().encode()
    matched = False
    for key in settings.secret_keys:
        matched |= hmac.compare_digest(presented, key.get_secret_value().encode())
    if not matched:
        raise Problem(403, "Forbidden", "the key is not a valid secret key", field="Authorization")
