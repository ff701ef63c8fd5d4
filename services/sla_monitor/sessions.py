"""The ops board's sign-in session: a signed cookie, its CSRF token, and the same-origin check.

The cookie holds who signed in (name and roles), until when, and a random session id, signed with
HMAC-SHA256 — never the key that was presented. Any replica verifies it without a shared store,
so the signing key must be the same on every replica:

- ``LEADFLOW_SLA__SESSION_SECRET`` when it is set (the production choice: rotate it to sign
  everyone out);
- else a key derived (HMAC-SHA256) from every configured secret key and principal key, which the
  replicas share already. Changing any of those keys signs everyone out. With no configured key
  at all (only keys kept in the database) there is nothing shared to derive from, and sign-in is
  refused until the setting is made. A per-process random secret would sign people out whenever
  their request reached another replica, so it is never used.

A session lasts while its signer still holds a key: each request checks that the principal is
still configured with the same roles, that a configured secret key remains, or that the database
key it signed in with is not revoked (``shared.auth.still_holds_key``). Revoking a key signs its
sessions out at their next request.

CSRF: the page carries a token derived from the session id (HMAC with the same key) and the
page's script sends it back in ``X-CSRF-Token``. Another site's page makes the browser send the
cookie (SameSite=Strict already refuses that for cross-site requests) but cannot read the page,
so it cannot know the token; on top, ``Origin`` / ``Sec-Fetch-Site`` must say "same origin".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson
from fastapi import Request, Response

from services.sla_monitor.settings import SlaConfig, sla_config
from shared.auth import Caller, still_holds_key

COOKIE = "leadflow_ops"
PATH = "/ops"
CSRF_HEADER = "X-CSRF-Token"
_SESSION, _CSRF, _DERIVED = b"leadflow/ops-session\x00", b"leadflow/ops-csrf\x00", b"derived"


class SessionsUnavailable(Exception):
    """No signing key can be had that every replica shares (see the module's docstring)."""


@dataclass(frozen=True, slots=True)
class Session:
    caller: Caller
    expires: datetime
    csrf: str
    """The token the page sends back in ``X-CSRF-Token``."""

    def csrf_matches(self, presented: str | None) -> bool:
        """Compared in constant time; a missing token never matches."""
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


def signing_key(settings: SlaConfig) -> bytes:
    """The key that signs sessions, the same on every replica with the same settings."""
    configured = settings.sla.session_secret.get_secret_value()
    if configured:
        return hmac.digest(configured.encode(), _SESSION, hashlib.sha256)
    auth = settings.auth
    keys = [k.get_secret_value() for k in auth.secret_keys]
    keys += [p.key.get_secret_value() for p in auth.principals]
    if not keys:
        raise SessionsUnavailable(
            "set LEADFLOW_SLA__SESSION_SECRET: no configured key to derive the session key from"
        )
    material = b"".join(len(k).to_bytes(4, "big") + k for k in sorted(k.encode() for k in keys))
    return hmac.digest(material, _SESSION + _DERIVED, hashlib.sha256)


def issue(caller: Caller, *, key: bytes, now: datetime, hours: float) -> str:
    """A new session's cookie value: signed name, roles, expiry and a random session id."""
    payload = {
        "v": 1,
        "sub": caller.name,
        "roles": sorted(caller.roles),
        "exp": int((now + timedelta(hours=hours)).timestamp()),
        "sid": secrets.token_urlsafe(16),
    }
    body = _b64(orjson.dumps(payload))
    return f"{body}.{_b64(hmac.digest(key, _SESSION + body.encode(), hashlib.sha256))}"


def verify(token: str, *, key: bytes, now: datetime) -> Session | None:
    """The session a cookie value holds; None when it is forged, altered, malformed or expired."""
    body, dot, mac = token.partition(".")
    if not dot:
        return None
    expected = _b64(hmac.digest(key, _SESSION + body.encode(), hashlib.sha256))
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        payload = orjson.loads(_unb64(body))
        name, roles = str(payload["sub"]), frozenset(str(r) for r in payload["roles"])
        expires, sid = datetime.fromtimestamp(int(payload["exp"]), UTC), str(payload["sid"])
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError):
        return None
    if expires <= now:
        return None
    csrf = _b64(hmac.digest(key, _CSRF + sid.encode(), hashlib.sha256))
    return Session(Caller(name, roles), expires, csrf)


async def current_session(request: Request) -> Session | None:
    """FastAPI dependency: the request's valid session, if its cookie holds one."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        key = signing_key(sla_config(request.app.state.runtime.settings))
    except SessionsUnavailable:
        return None
    session = verify(token, key=key, now=datetime.now(UTC))
    if session is None or not await still_holds_key(request, session.caller):
        return None  # the key that signed in was revoked, or the principal removed
    return session


def same_origin(request: Request, *, required: bool) -> bool:
    """Whether the browser says the request comes from our own pages. ``required``: a request
    that says nothing (no ``Origin``, no ``Sec-Fetch-Site``) is refused too; browsers send
    ``Origin`` on every ``fetch`` POST."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return site == "same-origin" or not required
    return origin in _own_origins(request)


def set_cookie(response: Response, token: str, *, request: Request, hours: float) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(hours * 3600),
        path=PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, *, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )


def _own_origins(request: Request) -> set[str]:
    """This request's own origin, and the public URL's (behind a proxy that rewrites ``Host``)."""
    own = {f"{request.url.scheme}://{request.url.netloc}"}
    public = urlsplit(request.app.state.runtime.settings.http.public_url)
    if public.scheme and public.netloc:
        own.add(f"{public.scheme}://{public.netloc}")
    return own


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
