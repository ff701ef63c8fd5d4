"""Standard Webhooks signatures, made by the reference library (``standardwebhooks``).

Headers: ``webhook-id`` (the same on every retry, so receivers dedupe on it), ``webhook-timestamp``
(Unix seconds of this attempt), ``webhook-signature`` (``v1,<base64>`` per valid secret,
space-separated, so a receiver holding either secret verifies during a rotation).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def is_valid_secret(value: str) -> bool:
    if not value.startswith(PREFIX):
        return False
    try:
        raw = base64.b64decode(value[len(PREFIX) :], validate=True)
    except ValueError:
        return False
    return 24 <= len(raw) <= 64


def signature(secrets_: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> str:
    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets_)


def headers(secrets_: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature(secrets_, msg_id, timestamp, body),
        "user-agent": "Leadflow-Webhooks/1.0",
    }


def signing_secrets(
    secret: str, previous: str | None, previous_until: datetime | None, now: datetime
) -> list[str]:
    """The current secret, and the previous one while its rotation overlap lasts."""
    if previous and previous_until and previous_until > now:
        return [secret, previous]
    return [secret]
