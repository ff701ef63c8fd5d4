"""Signatures verify with the reference library (standardwebhooks), through a rotation too."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.webhooks import signing

BODY = '{"type":"lead.mql","data":{"lead_id":"x"}}'


def test_new_secrets_are_whsec_with_32_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and signing.is_valid_secret(secret)
    assert len(base64.b64decode(secret[6:])) == 32
    assert secret != signing.new_secret()


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("whsec_" + base64.b64encode(b"x" * 24).decode(), True),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), False),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), False),
        ("whsec_not base64!", False),
        (base64.b64encode(b"x" * 32).decode(), False),
    ],
)
def test_secret_shape(value: str, valid: bool) -> None:
    assert signing.is_valid_secret(value) is valid


def test_headers_verify_with_the_reference_library() -> None:
    secret, now = signing.new_secret(), datetime.now(UTC)
    headers = signing.headers([secret], "evt_1", now, BODY)
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(BODY, headers) == {"type": "lead.mql", "data": {"lead_id": "x"}}


def test_a_changed_body_or_another_secret_fails() -> None:
    secret, now = signing.new_secret(), datetime.now(UTC)
    headers = signing.headers([secret], "evt_1", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("x", "y"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new, now = signing.new_secret(), signing.new_secret(), datetime.now(UTC)
    secrets = signing.signing_secrets(new, old, now + timedelta(hours=1), now)
    headers = signing.headers(secrets, "evt_2", now, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)


def test_after_the_overlap_only_the_new_secret_signs() -> None:
    old, new, now = signing.new_secret(), signing.new_secret(), datetime.now(UTC)
    assert signing.signing_secrets(new, old, now, now) == [new]
    assert signing.signing_secrets(new, None, None, now) == [new]
