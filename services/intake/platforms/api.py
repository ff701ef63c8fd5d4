"""Ad-platform webhooks: Google Ads lead forms and Meta lead ads.

Google posts the whole lead with a shared key in the body; we answer once it is stored. Meta posts
a signed notification naming the lead; we store the notification (a pending fetch), answer 200, and
fetch the fields from the Graph API after the response (and later, until it works).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, BackgroundTasks, FastAPI, Query, Request, Response
from fastapi.responses import PlainTextResponse

from services.intake.platforms.fetch import FetchSweeper
from services.intake.platforms.mapping import (
    GOOGLE_FIELDS,
    SubmissionInvalid,
    find_google_key,
    google_answers,
    key_matches,
    lenient_json_text,
    meta_signature_matches,
    submission_from,
)
from services.intake.platforms.store import (
    PlatformArrival,
    answer_of,
    claim,
    enqueue_fetches,
    first_answer,
    store_platform_lead,
)
from services.intake.schemas import LeadAccepted
from services.intake.settings import PlatformSettings, intake_config
from shared import problems
from shared.deps import RuntimeDep
from shared.problems import Problem
from shared.runtime import Runtime

REPLAYED = "Idempotent-Replayed"
log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/ingest", tags=["ad platforms"])
GOOGLE_EXAMPLE = {
    "lead_id": "TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "user_column_data": [
        {"column_name": "Full Name", "string_value": "Ada Lovelace", "column_id": "FULL_NAME"},
        {"column_name": "User Email", "string_value": "ada@example.com", "column_id": "EMAIL"},
    ],
    "api_version": "1.0",
    "form_id": 123456789,
    "campaign_id": 123456789,
    "google_key": "the key set in Google Ads",
    "is_test": True,
    "gcl_id": "gcl-id",
    "adgroup_id": 0,
    "creative_id": 0,
}
META_EXAMPLE = {
    "object": "page",
    "entry": [
        {
            "id": "1001",
            "time": 1767225600,
            "changes": [
                {
                    "field": "leadgen",
                    "value": {
                        "leadgen_id": "444444444444",
                        "page_id": "1001",
                        "form_id": "555555555555",
                        "ad_id": "0",
                        "adgroup_id": "0",
                        "created_time": 1767225600,
                    },
                }
            ],
        }
    ],
}


def _json_body(example: dict[str, Any]) -> dict[str, Any]:
    """Documents a body the route reads raw (leniently, or to check its signature)."""
    schema = {"type": "object", "additionalProperties": True}
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}


async def _json_object(request: Request, *, lenient: bool) -> dict[str, Any]:
    raw = await request.body()
    try:
        text = raw.decode()
        body = orjson.loads(lenient_json_text(text) if lenient else text)
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        raise Problem(400, "Bad Request", "the body is not JSON", field="body") from None
    if not isinstance(body, dict):
        raise Problem(400, "Bad Request", "the body must be a JSON object", field="body")
    return body


def not_configured(integration: str, setting: str) -> Problem:
    """404, not 503: an integration this deployment has not set up is not a passing outage,
    and a platform retrying it would retry forever."""
    return Problem(
        404,
        "Not configured",
        f"{integration} are not set up on this server ({setting} is not set); "
        "retrying will not help",
        retryable=False,
    )


def _check_google_key(body: dict[str, Any], form_id: str, settings: PlatformSettings) -> None:
    form = settings.google_ads_forms.get(form_id)
    expected = form.google_key if form and form.google_key else settings.google_ads_key
    if expected is None:
        raise not_configured("Google Ads lead forms", "LEADFLOW_PLATFORMS__GOOGLE_ADS_KEY")
    try:
        presented, spelling = find_google_key(body)
    except SubmissionInvalid as twice:
        raise Problem(400, "Bad Request", twice.detail, field=twice.field) from None
    if not presented:
        raise Problem(401, "Unauthorized", "google_key is missing", field="google_key")
    if not key_matches(presented, expected.get_secret_value()):
        raise Problem(403, "Forbidden", "google_key does not match", field=spelling)


def _platform_id(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise Problem(422, "Invalid request", f"{name} is required", field=name)
    if len(str(value)) > 200:
        raise Problem(422, "Invalid request", f"{name} is too long", field=name)
    return str(value).strip()


@router.post(
    "/google-ads",
    response_model=LeadAccepted,
    summary="Google Ads lead-form webhook",
    description="Google's lead-form webhook body (trailing commas and `Google_key` tolerated). "
    "The lead is stored before the answer; a retry with the same `lead_id` gets the first "
    f"answer again (header `{REPLAYED}: true`). Test leads (`is_test`) are stored but flagged.",
    responses=problems.documented(400, 401, 403, 404, 413, 422, 503),
    openapi_extra=_json_body(GOOGLE_EXAMPLE),
)
async def google_ads_lead(request: Request, response: Response, runtime: RuntimeDep) -> Any:
    body = await _json_object(request, lenient=True)
    settings = intake_config(runtime.settings).platforms
    form_id = str(body.get("form_id") or "")
    _check_google_key(body, form_id, settings)
    lead_id = _platform_id(body, "lead_id")
    form = settings.google_ads_forms.get(form_id)
    try:
        submission = submission_from(
            google_answers(body.get("user_column_data")),
            defaults=GOOGLE_FIELDS,
            overrides=form.fields if form else {},
            source=form.source if form and form.source else "google-ads",
            region=getattr(intake_config(runtime.settings).intake, "default_region", None),
        )
    except SubmissionInvalid as invalid:
        raise Problem(422, "Invalid request", invalid.detail, field=invalid.field) from None
    is_test = _is_test(body) or bool(form and form.test)
    arrival = PlatformArrival("google-ads", lead_id, form_id or None, is_test, _google_ids(body))
    now = datetime.now(UTC)
    async with runtime.sessions.begin() as session:
        if await claim(session, arrival, status="pending", now=now):
            raw = {k: v for k, v in body.items() if k.lower() != "google_key"}
            accepted: LeadAccepted | None = await store_platform_lead(
                session,
                arrival,
                submission,
                settings=intake_config(runtime.settings),
                now=now,
                raw=raw,
            )
        else:
            row = await first_answer(session, "google-ads", lead_id)
            accepted = answer_of(row) if row else None
            response.headers[REPLAYED] = "true"
    if accepted is None:  # cannot happen: google rows are stored in the claiming transaction
        raise Problem(409, "Conflict", "this lead_id is being stored", field="lead_id")
    runtime.notify_relay()
    return accepted


def _is_test(body: dict[str, Any]) -> bool:
    flag = body.get("is_test")
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def _google_ids(body: dict[str, Any]) -> dict[str, Any]:
    """The platform's ids and facts kept with the record; never the key or the answers."""
    keep = ("api_version", "form_id", "campaign_id", "adgroup_id", "creative_id", "gcl_id")
    more = ("asset_group_id", "lead_stage", "lead_submit_time")
    return {name: body[name] for name in keep + more if isinstance(body.get(name), str | int)}


@router.get(
    "/meta",
    response_class=PlainTextResponse,
    summary="Meta webhook verification handshake",
    responses=problems.documented(400, 403, 404, 503),
)
async def meta_verify(
    runtime: RuntimeDep,
    mode: Annotated[str, Query(alias="hub.mode")],
    challenge: Annotated[str, Query(alias="hub.challenge", max_length=200)],
    token: Annotated[str, Query(alias="hub.verify_token")],
) -> PlainTextResponse:
    expected = intake_config(runtime.settings).platforms.meta_verify_token
    if expected is None:
        raise not_configured("Meta lead ads", "LEADFLOW_PLATFORMS__META_VERIFY_TOKEN")
    if mode != "subscribe":
        raise Problem(400, "Bad Request", "hub.mode must be subscribe", field="hub.mode")
    if not key_matches(token, expected.get_secret_value()):
        raise Problem(403, "Forbidden", "the verify token does not match", field="hub.verify_token")
    return PlainTextResponse(challenge)


@router.post(
    "/meta",
    summary="Meta lead-ads notification",
    description="Verified by `X-Hub-Signature-256` over the raw body. Each `leadgen` change is "
    "stored as a pending fetch before the 200; the lead's fields are then fetched from the Graph "
    "API, and fetched again later for as long as that fails. Repeated `leadgen_id`s are ignored.",
    responses=problems.documented(400, 401, 403, 404, 413, 422, 503),
    openapi_extra=_json_body(META_EXAMPLE),
)
async def meta_notification(
    request: Request, background: BackgroundTasks, runtime: RuntimeDep
) -> dict[str, int]:
    secret = intake_config(runtime.settings).platforms.meta_app_secret
    if secret is None:
        raise not_configured("Meta lead ads", "LEADFLOW_PLATFORMS__META_APP_SECRET")
    signature = request.headers.get("x-hub-signature-256")
    if not signature:
        raise Problem(
            401, "Unauthorized", "X-Hub-Signature-256 is missing", field="X-Hub-Signature-256"
        )
    raw = await request.body()
    if not meta_signature_matches(secret.get_secret_value(), raw, signature):
        raise Problem(403, "Forbidden", "the signature does not match", field="X-Hub-Signature-256")
    arrivals = _leadgen_changes(
        await _json_object(request, lenient=False), intake_config(runtime.settings).platforms
    )
    async with runtime.sessions.begin() as session:
        fresh = await enqueue_fetches(session, arrivals, now=datetime.now(UTC))
    if fresh:
        background.add_task(request.app.state.fetch_sweeper.sweep_due)
    return {"received": len(arrivals), "new": fresh}


def _leadgen_changes(body: dict[str, Any], settings: PlatformSettings) -> list[PlatformArrival]:
    arrivals: dict[str, PlatformArrival] = {}
    entries = body.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if change.get("field") != "leadgen" or not isinstance(value, dict):
                continue
            leadgen_id = _platform_id(value, "leadgen_id")
            ids = ("page_id", "form_id", "ad_id", "adgroup_id", "created_time")
            detail = {k: value[k] for k in ids if isinstance(value.get(k), str | int)}
            form_id = str(value["form_id"]) if "form_id" in detail else None
            form = settings.meta_forms.get(form_id or "")
            is_test = bool(form and form.test)
            arrivals[leadgen_id] = PlatformArrival("meta", leadgen_id, form_id, is_test, detail)
    return list(arrivals.values())


class SweeperHandle:
    """The app's sweeper: the Meta route runs a sweep after answering; the process runs it."""

    def __init__(self, runtime: Runtime) -> None:
        self.sweeper = FetchSweeper(
            runtime.sessions, intake_config(runtime.settings), on_commit=runtime.notify_relay
        )

    async def sweep_due(self) -> None:
        try:
            await self.sweeper.sweep(datetime.now(UTC))
        except Exception as error:  # the rows stay; the process's sweeper retries them
            log.warning("sweep after a Meta notification failed (%s)", error.__class__.__name__)


def install(app: FastAPI, runtime: Runtime) -> None:
    """Mount the platform routes; the pending-fetch sweeper loop is started by the process."""
    app.state.fetch_sweeper = SweeperHandle(runtime)
    app.include_router(router)


def start_fetch_sweeper(runtime: Runtime) -> FetchSweeper:
    """The intake process's background sweeper of pending Graph API fetches."""
    sweeper = FetchSweeper(
        runtime.sessions, intake_config(runtime.settings), on_commit=runtime.notify_relay
    )
    runtime.spawn(sweeper.run(), name="platform-fetch-sweeper")
    return sweeper
