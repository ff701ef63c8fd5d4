"""``leadflow dev``: embedded broker (unless one is configured), migrations, every service, one
process, one port."""

from __future__ import annotations

import logging
import secrets
import shlex
from datetime import UTC, datetime

from pydantic import SecretStr

from services.api import create_app as intake_app
from services.intake.keys.store import dev_public_key
from services.processes import start_every_service
from services.routing.main import add_sample_team
from services.scoring.main import activate_sample_rules
from services.sla_monitor.sample import activate_sample_policies
from shared import tracing
from shared.broker import EmbeddedBroker, embedded_kafka
from shared.config import Settings
from shared.migrate import upgrade
from shared.runtime import Runtime
from shared.serve import serve

log = logging.getLogger("leadflow.dev")


def dev_secret_key(settings: Settings) -> str:
    """The configured secret key, or one made for this data dir and kept there."""
    if settings.auth.secret_keys:
        return settings.auth.secret_keys[0].get_secret_value()
    path = settings.data_dir / "secret-key"
    if not path.exists():
        path.write_text("sk_" + secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


async def run_dev(settings: Settings) -> int:
    tracing.configure(settings.tracing, "leadflow")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configured = bool(settings.auth.secret_keys)
    key = dev_secret_key(settings)
    broker = None
    if not settings.kafka.bootstrap_servers:
        broker = EmbeddedBroker(log_path=settings.data_dir / "broker.log")
        broker.start()
    try:
        kafka = (
            embedded_kafka(settings.kafka, broker.bootstrap_servers) if broker else settings.kafka
        )
        auth = settings.auth.model_copy(update={"secret_keys": [SecretStr(key)]})
        settings = settings.model_copy(update={"kafka": kafka, "auth": auth})
        runtime = Runtime.create(settings)
        await upgrade(runtime.engine)
        await activate_sample_rules(runtime)
        await add_sample_team(runtime)
        await activate_sample_policies(runtime)
        start_every_service(runtime)
        public = await dev_public_key(
            runtime.sessions, settings.data_dir / "public-key", now=datetime.now(UTC)
        )
        _announce(settings, broker, public, key_configured=configured)
        return await serve(runtime, intake_app(runtime), port=settings.http.intake_port)
    finally:
        if broker is not None:
            broker.stop()


def _announce(
    settings: Settings, broker: EmbeddedBroker | None, public: str, *, key_configured: bool
) -> None:
    """The start-up banner. It lands in logs, so it names where the secret key is kept and a
    command that reads it, never the key itself."""
    base = f"http://{settings.http.host}:{settings.http.intake_port}"
    if key_configured:
        kept, bearer = "the first of LEADFLOW_AUTH__SECRET_KEYS", "<secret key>"
    else:
        path = settings.data_dir / "secret-key"
        kept, bearer = f"kept in {path}", f"$(cat {shlex.quote(str(path))})"
    where = (
        "embedded broker " + broker.bootstrap_servers
        if broker
        else "broker " + str(settings.kafka.bootstrap_servers)
    )
    print(
        f"""
Leadflow is running ({where}; database {_safe_url(settings.db.url)}).

  Post a lead (public form key kept in {settings.data_dir / "public-key"}):
    curl -s -X POST {base}/v1/leads -H 'Content-Type: application/json' \\
      -H 'X-API-Key: {public}' \\
      -d '{{"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", \\
           "company": "Analytical Engines"}}'

  Read it back (secret key {kept}):
    curl -s {base}/v1/leads/<lead_id> -H "Authorization: Bearer {bearer}"

  Its SLA clocks, live: {base}/ops/sla (sign in with the secret key)
  The funnel, the plan and the monthly review: {base}/ops/funnel

  API docs: {base}/docs     Health: {base}/readyz     Stop: Ctrl-C
""",
        flush=True,
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
