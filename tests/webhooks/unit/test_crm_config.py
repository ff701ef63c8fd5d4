"""CRM subscription settings: defaults merged, every refusal naming what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.webhooks.crm.config import (
    HUBSPOT_PROPERTIES,
    SALESFORCE_FIELDS,
    HubSpotConfig,
    InboundRule,
    SalesforceConfig,
)

SF = {"login_url": "https://acme.my.salesforce.com", "client_id": "3MVG9abc"}


def test_hubspot_defaults() -> None:
    config = HubSpotConfig()
    assert config.base_url == "https://api.hubapi.com"
    assert config.properties == HUBSPOT_PROPERTIES
    assert config.stages["mql"] == {
        "lifecyclestage": "marketingqualifiedlead",
        "hs_lead_status": "NEW",
    }
    assert config.batch_size == 100
    assert config.inbound["hs_lead_status"]["BAD_TIMING"] == InboundRule(
        outcome="rejected", reason="bad_timing"
    )
    assert set(config.inbound["lifecyclestage"]) == {"salesqualifiedlead"}


@pytest.mark.parametrize("outcome", ["opportunity", "booked", "won"])
def test_an_inbound_rule_needing_an_amount_is_refused(outcome: str) -> None:
    with pytest.raises(ValidationError, match="needs an amount"):
        HubSpotConfig(inbound={"lifecyclestage": {"customer": {"outcome": outcome}}})


def test_a_mapping_overrides_and_adds_to_the_defaults() -> None:
    config = HubSpotConfig(
        properties={"contact.title": "job_function", "custom.role": "jobtitle", "sla.deadline": "x"}
    )
    assert config.properties["contact.title"] == "job_function"
    assert config.properties["custom.role"] == "jobtitle"  # claims jobtitle from the default
    assert config.properties["sla.deadline"] == "x"
    assert config.properties["contact.email"] == "email"


def test_merged_settings_validate_to_themselves() -> None:
    config = HubSpotConfig(properties={"custom.role": "jobtitle"}, stages={"sql": {}})
    assert HubSpotConfig.model_validate(config.model_dump()) == config
    sf = SalesforceConfig(**SF, fields={"custom.surname": "LastName"}, statuses={"mql": ""})
    assert SalesforceConfig.model_validate(sf.model_dump()) == sf


def test_entries_replace_defaults_by_key() -> None:
    config = HubSpotConfig(
        stages={"sql": {}, "sal": {"hs_lead_status": "IN_PROGRESS"}},
        inbound={"hs_lead_status": {"CONNECTED": {"outcome": "lost", "reason": "gone_quiet"}}},
    )
    assert config.stages["sql"] == {} and config.stages["mql"]["hs_lead_status"] == "NEW"
    assert config.stages["sal"] == {"hs_lead_status": "IN_PROGRESS"}
    assert set(config.inbound["hs_lead_status"]) == {"CONNECTED"}
    assert "salesqualifiedlead" in config.inbound["lifecyclestage"]


def _refusal(model: type[Any], settings: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(settings)
    error = caught.value.errors()[0]
    return ".".join(str(part) for part in error["loc"]), error["msg"]


@pytest.mark.parametrize(
    ("settings", "where", "says"),
    [
        ({"properties": {"utm.sorce": "utm"}}, "properties", "utm.sorce: not a Leadflow field"),
        ({"properties": {"contact.title": "Job Title"}}, "properties", "contact.title: 'Job"),
        ({"properties": {"contact.title": ""}}, "properties", "contact.title: the CRM property"),
        ({"properties": {"custom.x": "hubspot_owner_id"}}, "", "custom.x: hubspot_owner_id is set"),
        ({"properties": {"custom.x": "lifecyclestage"}}, "", "lifecyclestage is set by stages."),
        ({"properties": {"custom.x": "email"}}, "", "custom.x: email is set by contact.email"),
        ({"owners": {"ana@example.com": "ana"}}, "owners", "'ana' is not a HubSpot owner id"),
        ({"owners": {"ana": "41"}}, "owners", "'ana': an owner is named by their email"),
        ({"stages": {"mql": {"Lifecycle": "x"}}}, "stages", "mql: 'Lifecycle' is not a valid"),
        ({"batch_size": 101}, "batch_size", "less than or equal to 100"),
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"base_url": "http://api.hubapi.com"}, "base_url", "must be an https URL"),
        ({"base_url": "https://api.hubapi.com/crm"}, "base_url", "must not have a path"),
        ({"inbound": {"x": {"v": {"outcome": "maybe"}}}}, "inbound.x.v.outcome", "Input should"),
        ({"inbound": {"x": {"v": {"outcome": "won", "why": 1}}}}, "inbound.x.v.why", "Extra"),
        ({"token": "pat-…"}, "token", "Extra inputs are not permitted"),
    ],
)
def test_hubspot_refusals_name_the_field(settings: dict[str, Any], where: str, says: str) -> None:
    loc, message = _refusal(HubSpotConfig, settings)
    assert loc == where and says in message


def test_owners_are_keyed_by_lower_case_email_or_user_id() -> None:
    user = "0b7c1a52-3f9e-4d5c-9a8e-2f1d3c4b5a69"
    config = HubSpotConfig(owners={"Ana@Example.com": "41", user.upper(): "42"})
    assert config.owners == {"ana@example.com": "41", user: "42"}


def test_local_http_is_allowed_for_fakes() -> None:
    assert HubSpotConfig(base_url="http://127.0.0.1:8123/").base_url == "http://127.0.0.1:8123"


def test_salesforce_defaults() -> None:
    config = SalesforceConfig(**SF)
    assert config.api_version == "v62.0" and config.object == "Lead"
    assert config.external_id_field == "Leadflow_Id__c"
    assert config.fields == SALESFORCE_FIELDS
    assert config.statuses == {"mql": "Open - Not Contacted", "sql": "Working - Contacted"}
    assert config.batch_size == 200 and config.assignment_rules is False


@pytest.mark.parametrize(
    ("settings", "where", "says"),
    [
        ({"api_version": "62.0"}, "api_version", "String should match pattern"),
        ({"api_version": "v62"}, "api_version", "String should match pattern"),
        ({"external_id_field": "Leadflow Id"}, "external_id_field", "not a valid Salesforce"),
        ({"fields": {"custom.x": "Bad__"}}, "fields", "custom.x: 'Bad__' is not a valid"),
        ({"fields": {"custom.x": "OwnerId"}}, "", "fields: custom.x: OwnerId is set by owners"),
        ({"fields": {"custom.x": "Leadflow_Id__c"}}, "", "is set by external_id_field"),
        ({"fields": {"qualification.stage": "Status"}}, "", "Status is set by statuses"),
        ({"owners": {"ana@example.com": "00G000000000001"}}, "owners", "is not a User id"),
        ({"queues": {"EMEA": "005000000000001"}}, "queues", "is not a Queue id"),
        ({"batch_size": 201}, "batch_size", "less than or equal to 200"),
        ({"login_url": "https://acme.my.salesforce.com/x"}, "login_url", "must not have a path"),
        ({"client_id": ""}, "client_id", "at least 1 character"),
        ({"client_secret": "s"}, "client_secret", "Extra inputs are not permitted"),
    ],
)
def test_salesforce_refusals_name_the_field(
    settings: dict[str, Any], where: str, says: str
) -> None:
    loc, message = _refusal(SalesforceConfig, {**SF, **settings})
    assert loc == where and says in message


def test_salesforce_ids_15_or_18_characters() -> None:
    config = SalesforceConfig(
        **SF,
        owners={"ana@example.com": "005000000000001", "bo@example.com": "005000000000001AAA"},
        queues={"EMEA": "00G000000000001AAA"},
    )
    assert config.queues == {"EMEA": "00G000000000001AAA"}
