"""SLA policies: parsing, validation errors that name the problem, choosing and recipients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.sla_monitor.facts import sla_facts
from services.sla_monitor.policy import (
    PolicyInvalid,
    compile_policies,
    parse_duration,
    tier_offset,
)

POLICIES = """
name: Speed to lead
calendars:
  berlin: {time_zone: Europe/Berlin, hours: "mon-fri 09:00-17:00", holidays: {country: DE}}
  newyork: {time_zone: America/New_York, hours: "mon-fri 09:00-17:00"}
calendar: berlin
teams: {inbound-us: newyork}
owners: {ana@example.com: always}
contacts:
  manager: [lead@example.com]
  head_of_sales: [cro@example.com]
team_contacts: {inbound-us: {manager: [us-lead@example.com]}}
policies:
  - id: hot
    when: 'lead.grade == "A" && !lead.is_expansion'
    first_response:
      within: 15m
      ladder:
        - {at: 50%, notify: [owner]}
        - {at: 100%, notify: [manager]}
        - {at: 100% + 30m, reassign: true}
        - {at: 100% + 2h, notify: [head_of_sales, ops@example.com]}
  - id: default
    first_response: {within: 4h}
    acceptance: {within: 8h}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1d", "15", "m", "-5m", "fast"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("50%", timedelta(minutes=30)),
        ("80%", timedelta(minutes=48)),
        ("100%", timedelta(hours=1)),
        ("breach", timedelta(hours=1)),
        ("100% + 30m", timedelta(minutes=90)),
        ("breach + 2h", timedelta(hours=3)),
        ("100% - 10m", timedelta(minutes=50)),
        ("150%", timedelta(minutes=90)),
    ],
)
def test_tier_offsets(at: str, expected: timedelta) -> None:
    assert tier_offset(at, timedelta(hours=1)) == expected


def _lead(**facts: object) -> dict[str, object]:
    base: dict[str, object] = {
        "stage": "mql", "grade": "B", "score": 50, "engagement": 0, "source": "web",
        "country": "DE", "segment": "", "employees": 0, "team": "", "is_expansion": False,
        "is_test": False,
    }  # fmt: skip
    return base | facts


def test_the_first_matching_policy_applies() -> None:
    compiled = compile_policies(POLICIES)
    assert compiled.choose(_lead(grade="A")).id == "hot"  # type: ignore[union-attr]
    assert compiled.choose(_lead(grade="A", is_expansion=True)).id == "default"  # type: ignore[union-attr]
    assert compiled.choose(_lead()).id == "default"  # type: ignore[union-attr]


def test_calendar_owner_then_team_then_default_and_policy_overrides() -> None:
    compiled = compile_policies(POLICIES)
    hot = compiled.spec.policies[0]
    assert compiled.calendar_for(hot, team="inbound-us", owner_email="bo@x.com")[0] == "newyork"
    assert compiled.calendar_for(hot, team="inbound-us", owner_email="Ana@example.com")[0] == (
        "always"
    )
    assert compiled.calendar_for(hot, team="other", owner_email=None)[0] == "berlin"
    monday_evening = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)  # 17:30 in Berlin
    calendar = compiled.calendar_for(hot, team=None, owner_email=None)[1]
    assert not calendar.is_open(monday_evening)


def test_recipients_resolve_owner_groups_team_overrides_and_addresses() -> None:
    compiled = compile_policies(POLICIES)
    found = compiled.recipients(
        ["owner", "manager", "head_of_sales", "ops@example.com", "owner"],
        owner_email="ana@example.com",
        team="inbound-us",
    )
    assert found == ["ana@example.com", "us-lead@example.com", "cro@example.com", "ops@example.com"]
    assert compiled.recipients(["owner", "manager"], owner_email=None, team=None) == [
        "lead@example.com"
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("calendar: berlin", "calendar: paris"), "no calendar named 'paris'"),
        (("inbound-us: newyork}", "inbound-us: tokyo}"), "teams.inbound-us: no calendar"),
        (("notify: [manager]", "notify: [managers]"), "no contact group 'managers'"),
        (("within: 15m", "within: 1d"), "not a duration"),
        (("lead.grade ==", "lead.nope =="), "policy hot: does not type-check"),
        (("lead.grade ==", "grade =="), "unknown variable 'grade'"),
        (("'lead.grade == \"A\" && !lead.is_expansion'", "lead.score"), "must be true or false"),
        (("{at: 100% + 30m, reassign: true}", "{at: 50%, reassign: true}"), "at or after"),
        (("{at: 50%, notify: [owner]}", "{at: 50%}"), "neither notifies nor reassigns"),
        (("{at: 50%, notify: [owner]}", "{at: soon, notify: [owner]}"), "not a tier offset"),
        (("id: default", "id: hot"), "policy id 'hot' is used twice"),
        (("holidays: {country: DE}", "holidays: {country: XX}"), "XX"),
        (('hours: "mon-fri 09:00-17:00", holidays', 'hours: "mon-fri 9-5", holidays'), "9-5"),
        (("within: 4h}", "within: 4h, colour: red}"), "colour"),
    ],
)
def test_invalid_policies_name_the_problem(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in POLICIES
    with pytest.raises(PolicyInvalid) as raised:
        compile_policies(POLICIES.replace(old, new, 1))
    assert message in str(raised.value)


def test_not_yaml_and_no_policies_are_refused() -> None:
    with pytest.raises(PolicyInvalid, match="not YAML"):
        compile_policies("policies: [")
    with pytest.raises(PolicyInvalid, match="policies"):
        compile_policies("name: empty\npolicies: []\n")


class _Lead:
    stage, fit_grade, score, engagement_score, source = "mql", None, None, 12, "web"
    country, is_expansion, is_test = None, None, False


def test_facts_always_carry_every_field() -> None:
    facts = sla_facts(_Lead(), [{"country": "fr", "custom": {"segment": "SMB", "employees": "40"}}])
    assert facts["country"] == "FR"
    assert facts["segment"] == "smb"
    assert facts["employees"] == 40
    assert facts["grade"] == "" and facts["score"] == 0 and facts["is_expansion"] is False
    assert compile_policies(POLICIES).choose(facts | {"team": "x"}).id == "default"  # type: ignore[union-attr]
