"""Kafka clients with the settings Leadflow relies on, and explicit topic creation.

Every client (producer, consumer, admin) is built from ``*_options`` here, each starting from
``client_security``: no client can connect without the cluster's TLS and SASL settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.config import TLS_PROTOCOLS, KafkaSettings
from shared.kafka_auth import ClientCredentialsTokens, tls_context

log = logging.getLogger(__name__)
METADATA_MAX_AGE_MS = 10_000
"""How soon a consumer sees a topic's new partitions (``consumer_options``)."""


class MissingTopics(RuntimeError):
    """``kafka.create_topics`` is off and topics this process needs are not on the broker. Not
    a passing outage: someone must create them, so the process stops, naming them."""


def bootstrap(settings: KafkaSettings) -> str:
    if not settings.bootstrap_servers:
        raise RuntimeError("LEADFLOW_KAFKA__BOOTSTRAP_SERVERS is not set")
    return settings.bootstrap_servers


def client_security(settings: KafkaSettings) -> dict[str, Any]:
    """The aiokafka keyword arguments for ``settings.security_protocol``: the TLS context for
    SSL and SASL_SSL, the SASL mechanism and its credentials (or token provider) for SASL_*."""
    security: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in TLS_PROTOCOLS:
        security["ssl_context"] = tls_context(settings)
    mechanism = settings.sasl_mechanism
    if mechanism == "OAUTHBEARER":
        assert settings.sasl_oauth_token_url and settings.sasl_oauth_client_id  # validated
        assert settings.sasl_oauth_client_secret
        security["sasl_mechanism"] = mechanism
        security["sasl_oauth_token_provider"] = ClientCredentialsTokens(
            settings.sasl_oauth_token_url,
            settings.sasl_oauth_client_id,
            settings.sasl_oauth_client_secret,
            scope=settings.sasl_oauth_scope,
        )
    elif mechanism is not None:  # PLAIN and SCRAM-SHA-*: aiokafka names both "sasl_plain_…"
        assert settings.sasl_password is not None  # validated with the mechanism
        security["sasl_mechanism"] = mechanism
        security["sasl_plain_username"] = settings.sasl_username
        security["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return security


def producer_options(settings: KafkaSettings, *, client_id: str | None = None) -> dict[str, Any]:
    # acks=all with one in-flight batch per partition (aiokafka's default) keeps a key's order.
    return {
        **client_security(settings),
        "bootstrap_servers": bootstrap(settings),
        "client_id": client_id or settings.client_id,
        "acks": "all",
        "enable_idempotence": settings.idempotence,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": settings.request_timeout_ms,
    }


def consumer_options(
    settings: KafkaSettings, *, group_id: str, fetch_max_wait_ms: int | None = None
) -> dict[str, Any]:
    # Offsets are committed by hand, after the database commit of the batch's effects.
    return {
        **client_security(settings),
        "bootstrap_servers": bootstrap(settings),
        "client_id": settings.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "fetch_max_wait_ms": fetch_max_wait_ms or settings.fetch_max_wait_ms,
        "request_timeout_ms": max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
        "max_poll_interval_ms": 300_000,
        # A topic's partitions are learnt from metadata, refreshed this often (aiokafka's
        # default: 5 minutes): a topic given more partitions, or recreated by a broker that
        # lost it, is read whole within this time, not minutes later.
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
    }


def admin_options(settings: KafkaSettings) -> dict[str, Any]:
    return {
        **client_security(settings),
        "bootstrap_servers": bootstrap(settings),
        "client_id": f"{settings.client_id}-admin",
        "request_timeout_ms": settings.request_timeout_ms,
    }


def make_producer(settings: KafkaSettings, *, client_id: str | None = None) -> AIOKafkaProducer:
    return AIOKafkaProducer(**producer_options(settings, client_id=client_id))


def make_consumer(
    settings: KafkaSettings, *topics: str, group_id: str, fetch_max_wait_ms: int | None = None
) -> AIOKafkaConsumer:
    options = consumer_options(settings, group_id=group_id, fetch_max_wait_ms=fetch_max_wait_ms)
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(settings: KafkaSettings, topics: list[str]) -> list[str]:
    """Create the missing ones (each with its partitions and replicas); return those that had
    to be created. With ``create_topics`` off, raise ``MissingTopics`` when any is missing."""
    admin = AIOKafkaAdminClient(**admin_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in topics if topic not in existing]
        if missing and not settings.create_topics:
            raise MissingTopics(missing_topics_message(settings, missing))
        if missing:
            new = [
                NewTopic(
                    t,
                    num_partitions=settings.partitions_of(t),
                    replication_factor=settings.replication_factor_of(t),
                )
                for t in missing
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", missing)
        return missing
    finally:
        await admin.close()


def missing_topics_message(settings: KafkaSettings, missing: list[str]) -> str:
    commands = "\n".join(
        f"  kafka-topics.sh --bootstrap-server {bootstrap(settings).split(',')[0]} --create"
        f" --topic {topic} --partitions {settings.partitions_of(topic)}"
        f" --replication-factor {settings.replication_factor_of(topic)}"
        for topic in missing
    )
    return (
        f"topics missing on the broker: {', '.join(missing)}. (Or hidden from this client: it "
        f"needs Describe on them.) LEADFLOW_KAFKA__CREATE_TOPICS is false, so Leadflow does not "
        f"create them: create them with your cluster's tools "
        f"(console, Terraform, a KafkaTopic resource), for example\n{commands}\n"
        f"(kafka-topics.sh also needs --command-config with the cluster's security settings), "
        f"or set LEADFLOW_KAFKA__CREATE_TOPICS=true where Leadflow may create topics"
    )


async def wait_for_broker(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    host, _, port = bootstrap(settings).split(",")[0].rpartition(":")
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
