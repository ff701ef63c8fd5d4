"""A secret key made with `leadflow keys create --kind secret` opens every admin route, like a
configured one; a public or revoked key does not."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from services.intake.keys.store import revoke_key
from tests.support.common import Database
from tests.support.intake import client_for, intake, new_key


async def test_a_stored_secret_key_reads_leads_and_posts_activities(db: Database) -> None:
    async with intake(db, auth={"secret_keys": []}) as runtime:
        secret = await new_key(runtime, "secret")
        public = await new_key(runtime, "public")
        async with client_for(runtime, headers={"Authorization": f"Bearer {secret}"}) as client:
            posted = await client.post("/v1/leads", json={"email": "ada@example.com"})
            assert posted.status_code == 202
            lead = posted.json()["lead_id"]
            assert (await client.get(f"/v1/leads/{lead}")).status_code == 200
            activity = {"type": "pricing_page_visit"}
            made = await client.post(f"/v1/leads/{lead}/activities", json=activity)
            assert made.status_code in (201, 202), made.text

            for admin_route in ("/v1/teams", "/v1/rulesets", "/v1/subscriptions"):
                assert (await client.get(admin_route)).status_code == 200, admin_route

            as_public = {"Authorization": f"Bearer {public}"}
            refused = await client.post(
                f"/v1/leads/{lead}/activities", json=activity, headers=as_public
            )
            assert refused.status_code == 403

            async with runtime.sessions.begin() as session:
                from sqlalchemy import select

                from services.intake.models import ApiKey

                key_id = (
                    await session.scalars(select(ApiKey.id).where(ApiKey.kind == "secret"))
                ).one()
                assert await revoke_key(session, UUID(str(key_id)), now=datetime.now(UTC))
        fresh_app_runtime = runtime  # a new app has an empty key cache, as after the cache TTL
        async with client_for(
            fresh_app_runtime, headers={"Authorization": f"Bearer {secret}"}
        ) as client:
            assert (await client.get(f"/v1/leads/{lead}")).status_code == 403
            gone = await client.post(f"/v1/leads/{lead}/activities", json=activity)
            assert gone.status_code == 403
            assert (await client.get("/v1/rulesets")).status_code == 403
