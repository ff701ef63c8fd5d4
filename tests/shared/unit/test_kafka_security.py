"""The keyword arguments every aiokafka client gets, mode by mode (shared.kafka), the TLS context
they carry, the OAUTHBEARER token provider, and the settings that refuse an incomplete mode."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from services.settings import LeadflowSettings, load_settings
from shared.config import KafkaSettings, SettingsError, unknown_variables
from shared.kafka import admin_options, client_security, consumer_options, producer_options
from shared.kafka_auth import ClientCredentialsTokens, TokenUnavailable
from tests.support.common import self_signed_certificate

SERVERS = "broker-1.example.com:9093,broker-2.example.com:9093"
SECRET = "client-secret-xyz"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate: the brokers' CA, and the client's certificate and key."""
    return self_signed_certificate(tmp_path_factory.mktemp("ca"))


def kafka(**values: Any) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=SERVERS, **values)


def without_objects(options: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in options.items() if k not in {"ssl_context", "sasl_oauth_token_provider"}
    }


def test_plaintext_is_the_default_and_every_client_gets_the_same() -> None:
    settings = kafka()
    assert client_security(settings) == {"security_protocol": "PLAINTEXT"}
    assert producer_options(settings) == {
        "security_protocol": "PLAINTEXT",
        "bootstrap_servers": SERVERS,
        "client_id": "leadflow",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 10_000,
    }
    assert consumer_options(settings, group_id="g") == {
        "security_protocol": "PLAINTEXT",
        "bootstrap_servers": SERVERS,
        "client_id": "leadflow",
        "group_id": "g",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
        "fetch_max_wait_ms": 20,
        "request_timeout_ms": 15_000,
        "max_poll_interval_ms": 300_000,
        "metadata_max_age_ms": 10_000,
    }
    assert admin_options(settings) == {
        "security_protocol": "PLAINTEXT",
        "bootstrap_servers": SERVERS,
        "client_id": "leadflow-admin",
        "request_timeout_ms": 10_000,
    }


def test_ssl_with_a_ca_only(ca: tuple[Path, Path]) -> None:
    cert, _ = ca
    security = client_security(kafka(security_protocol="SSL", ssl_cafile=cert))
    assert without_objects(security) == {"security_protocol": "SSL"}
    context = security["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [dict(pair[0] for pair in c["subject"]) for c in context.get_ca_certs()] == [
        {"commonName": "127.0.0.1"}
    ]


def test_hostname_check_can_be_turned_off_but_the_certificate_is_still_verified(
    ca: tuple[Path, Path],
) -> None:
    cert, _ = ca
    settings = kafka(security_protocol="SSL", ssl_cafile=cert, ssl_check_hostname=False)
    context = client_security(settings)["ssl_context"]
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_ssl_without_a_ca_trusts_the_system_store() -> None:
    context = client_security(kafka(security_protocol="SSL"))["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


async def test_mutual_tls_presents_the_client_certificate(tmp_path: Path) -> None:
    """A real handshake with a server that requires a client certificate: it sees ours."""
    server_cert, server_key = self_signed_certificate(tmp_path / _mkdir(tmp_path, "server"))
    client_cert, client_key = self_signed_certificate(tmp_path / _mkdir(tmp_path, "client"))
    settings = kafka(
        security_protocol="SSL",
        ssl_cafile=server_cert,
        ssl_certfile=client_cert,
        ssl_keyfile=client_key,
    )
    security = client_security(settings)
    assert without_objects(security) == {"security_protocol": "SSL"}

    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_cert)
    server_side.load_cert_chain(server_cert, server_key)
    server_side.verify_mode = ssl.CERT_REQUIRED
    seen: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=security["ssl_context"], server_hostname="127.0.0.1"
        )
        await asyncio.sleep(0.1)
        writer.close()
    assert seen and seen[0]["subject"] == ((("commonName", "127.0.0.1"),),)


def test_an_encrypted_key_is_opened_with_its_password(
    ca: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = ca
    locked = tmp_path / "locked.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:s3cret"]
        + ["-out", str(locked)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    values = {"security_protocol": "SSL", "ssl_certfile": cert, "ssl_keyfile": locked}
    opened = client_security(kafka(**values, ssl_key_password="s3cret"))["ssl_context"]
    assert isinstance(opened, ssl.SSLContext)
    with pytest.raises(ssl.SSLError):
        client_security(kafka(**values, ssl_key_password="wrong"))


def test_sasl_plaintext_with_plain() -> None:
    settings = kafka(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="leadflow",
        sasl_password="pw",
    )
    assert client_security(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "leadflow",
        "sasl_plain_password": "pw",
    }


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_with_scram(mechanism: str, ca: tuple[Path, Path]) -> None:
    cert, _ = ca
    settings = kafka(
        security_protocol="SASL_SSL",
        ssl_cafile=cert,
        sasl_mechanism=mechanism,
        sasl_username="leadflow",
        sasl_password="pw",
    )
    security = client_security(settings)
    assert without_objects(security) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "leadflow",
        "sasl_plain_password": "pw",
    }
    assert security["ssl_context"].get_ca_certs()
    for options in (
        producer_options(settings),
        consumer_options(settings, group_id="g"),
        admin_options(settings),
    ):
        assert without_objects(options).items() >= without_objects(security).items()
        assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_ssl_with_oauthbearer() -> None:
    settings = kafka(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_url="https://idp.example.com/oauth2/token",
        sasl_oauth_client_id="leadflow",
        sasl_oauth_client_secret="cs",
        sasl_oauth_scope="kafka",
    )
    security = client_security(settings)
    assert without_objects(security) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
    }
    assert isinstance(security["ssl_context"], ssl.SSLContext)
    provider = security["sasl_oauth_token_provider"]
    assert isinstance(provider, ClientCredentialsTokens)
    assert (provider.url, provider.client_id, provider.scope) == (
        "https://idp.example.com/oauth2/token",
        "leadflow",
        "kafka",
    )


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = kafka(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="leadflow",
        sasl_password="hunter2-password",
    )
    assert "hunter2-password" not in repr(settings) and "hunter2-password" not in str(settings)


class TokenEndpoint:
    """A fake OAuth 2.0 token endpoint: counts requests, answers ``status`` with ``body``."""

    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.body, self.status, self.requests = body, status, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)


def _provider(endpoint: TokenEndpoint, clock: list[float]) -> ClientCredentialsTokens:
    return ClientCredentialsTokens(
        "https://idp.example.com/token",
        "leadflow",
        SecretStr(SECRET),
        scope="kafka",
        transport=httpx.MockTransport(endpoint),
        clock=lambda: clock[0],
    )


async def test_a_token_is_fetched_by_client_credentials_and_kept_until_near_expiry() -> None:
    endpoint = TokenEndpoint({"access_token": "t1", "token_type": "Bearer", "expires_in": 100})
    clock = [1000.0]
    provider = _provider(endpoint, clock)
    assert await asyncio.gather(provider.token(), provider.token()) == ["t1", "t1"]
    assert len(endpoint.requests) == 1  # connections opened at once share one request
    request = endpoint.requests[0]
    assert request.method == "POST" and str(request.url) == "https://idp.example.com/token"
    basic = base64.b64encode(f"leadflow:{SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"
    assert dict(httpx.QueryParams(request.content.decode())) == {
        "grant_type": "client_credentials",
        "scope": "kafka",
    }
    clock[0] = 1079.0
    assert await provider.token() == "t1" and len(endpoint.requests) == 1
    endpoint.body = {"access_token": "t2", "expires_in": 100}
    clock[0] = 1080.0  # 80% of its lifetime
    assert await provider.token() == "t2" and len(endpoint.requests) == 2


async def test_a_token_without_a_lifetime_is_fetched_for_each_connection() -> None:
    endpoint = TokenEndpoint({"access_token": "t"})
    provider = _provider(endpoint, [0.0])
    await provider.token()
    await provider.token()
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [(401, {"error": "invalid_client"}, "answered 401"), (200, {"nothing": 1}, "no access_token")],
)
async def test_a_refused_token_is_a_connection_error_without_the_secret(
    status: int, body: dict[str, Any], said: str
) -> None:
    provider = _provider(TokenEndpoint(body, status), [0.0])
    with pytest.raises(TokenUnavailable) as error:
        await provider.token()
    assert isinstance(error.value, KafkaConnectionError)  # retried like an unreachable broker
    assert said in str(error.value) and SECRET not in str(error.value)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"security_protocol": "SASL_SSL"}, "LEADFLOW_KAFKA__SASL_MECHANISM"),
        ({"sasl_mechanism": "PLAIN"}, "LEADFLOW_KAFKA__SECURITY_PROTOCOL"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256"},
            "LEADFLOW_KAFKA__SASL_USERNAME and LEADFLOW_KAFKA__SASL_PASSWORD are needed",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
            },
            "LEADFLOW_KAFKA__SASL_PASSWORD is needed",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauth_client_id": "c",
            },
            "LEADFLOW_KAFKA__SASL_OAUTH_TOKEN_URL and LEADFLOW_KAFKA__SASL_OAUTH_CLIENT_SECRET",
        ),
        ({"ssl_check_hostname": True, "ssl_key_password": "x"}, "LEADFLOW_KAFKA__SSL_KEY_PASSWORD"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent.pem"}, "SSL_CAFILE"),
        ({"security_protocol": "SSL", "ssl_key_password": "x"}, "LEADFLOW_KAFKA__SSL_CERTFILE"),
        ({"sasl_oauth_token_url": "idp.example.com/token"}, "SASL_OAUTH_TOKEN_URL"),
        ({"topic_partitions": {"leadflow.intak": 3}}, "LEADFLOW_KAFKA__TOPIC_PARTITIONS"),
        ({"topic_partitions": {"leadflow.intake": 0}}, "TOPIC_PARTITIONS"),
        ({"topic_replication_factors": {"x.sla": 3}}, "LEADFLOW_KAFKA__TOPIC_REPLICATION_FACTORS"),
    ],
)
def test_an_incomplete_mode_is_refused_naming_the_variable(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(kafka=values)
    assert named in str(error.value)


def test_the_modes_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, ca: tuple[Path, Path]
) -> None:
    cert, key = ca
    for name, value in {
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SSL_CAFILE": str(cert),
        "SASL_MECHANISM": "SCRAM-SHA-512",
        "SASL_USERNAME": "leadflow",
        "SASL_PASSWORD": "pw",
        "CREATE_TOPICS": "false",
        "TOPIC_PARTITIONS": '{"leadflow.intake": 12}',
    }.items():
        monkeypatch.setenv(f"LEADFLOW_KAFKA__{name}", value)
    settings = load_settings().kafka
    assert settings.sasl_password is not None and settings.sasl_password.get_secret_value() == "pw"
    assert settings.ssl_cafile == cert and not settings.create_topics
    assert settings.partitions_of("leadflow.intake") == 12
    assert settings.partitions_of("leadflow.sla") == settings.partitions == 4


def test_the_managed_kafka_page_names_only_settings_that_exist() -> None:
    page = (Path(__file__).parents[3] / "docs" / "kafka.md").read_text()
    named = set(re.findall(r"LEADFLOW_[A-Z0-9_]+[A-Z0-9]", page))
    assert len(named) > 10
    assert unknown_variables(dict.fromkeys(named, ""), LeadflowSettings) == []
    short = set(re.findall(r"`([A-Z][A-Z0-9_]+[A-Z0-9])[=`]", page)) - named  # `SSL_CAFILE`
    values = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", "PLAIN", "OAUTHBEARER"}
    assert short - values - {name.upper() for name in KafkaSettings.model_fields} == set()


def _mkdir(parent: Path, name: str) -> str:
    (parent / name).mkdir()
    return name
