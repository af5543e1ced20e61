"""Errors in searches (hl7.org/fhir/R4B/search.html#errors): unknown parameters and unsupported
modifiers are refused under ``Prefer: handling=strict`` and ignored under lenient handling (the
default) with the ``self`` link showing what was applied and an OperationOutcome entry saying
what was not; invalid values are a 400 with an OperationOutcome either way; no match is an
empty searchset."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from .search_helpers import STRICT, bundle, create, ids, link, matches, outcome_entries, search

LENIENT = {"HTTP_PREFER": "handling=lenient"}


def applied(body: dict) -> list[tuple[str, str]]:
    """The parameters of the searchset's self link, without the paging ones."""
    query = urlsplit(link(body, "self")).query
    return [(k, v) for k, v in parse_qsl(query) if k not in ("_count", "_snapshot", "_offset")]


def assert_outcome(response, status: int = 400) -> dict:
    assert response.status_code == status, response.json_body
    body = response.json_body
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and body["issue"][0]["severity"] in ("error", "fatal")
    assert body["issue"][0].get("diagnostics")
    return body


@pytest.fixture
def data(api):
    return {
        "male": create(
            api, {"resourceType": "Patient", "gender": "male", "birthDate": "1970-03-12"}
        ),
        "female": create(
            api, {"resourceType": "Patient", "gender": "female", "birthDate": "1982-11-30"}
        ),
    }


UNSUPPORTED = [
    "shoe-size=42",  # not a parameter of Patient
    "Gender=male",  # names are case-sensitive
    "gender:foo=male",  # not a modifier
    "gender:in=http://hl7.org/fhir/ValueSet/administrative-gender",  # needs terminology
    "gender:below=male",
    "name:phonetic=smith",
    "birthdate:exact=1970",  # :exact is for strings
    "organization:below=Organization/1",
    "_content=diabetes",
    "_text=diabetes",
    "_filter=gender eq male",
    "_query=everything",
]


@pytest.mark.parametrize("param", UNSUPPORTED)
def test_unsupported_parameter_is_refused_when_strict(api, data, param):
    body = assert_outcome(search(api, f"Patient?gender=male&{param}", **STRICT))
    assert body["issue"][0]["code"] in ("not-supported", "invalid")


@pytest.mark.parametrize("param", UNSUPPORTED)
@pytest.mark.parametrize("headers", [{}, LENIENT], ids=["default", "lenient"])
def test_unsupported_parameter_is_ignored_and_reported_when_lenient(api, data, param, headers):
    body = bundle(api, f"Patient?gender=male&{param}", **headers)
    assert [e["resource"]["id"] for e in matches(body)] == [data["male"]]
    assert body["total"] == 1
    # the self link shows what was applied, and only that
    assert applied(body) == [("gender", "male")]
    outcomes = outcome_entries(body)
    assert len(outcomes) == 1
    issue = outcomes[0]["issue"][0]
    assert issue["severity"] in ("warning", "information")
    name = param.split("=", 1)[0]
    assert name in issue["diagnostics"]


def test_outcome_entry_has_no_full_url_and_comes_after_the_matches(api, data):
    body = bundle(api, "Patient?shoe-size=42")
    modes = [e["search"]["mode"] for e in body["entry"]]
    assert modes == ["match", "match", "outcome"]
    assert "fullUrl" not in body["entry"][-1]


def test_several_unknown_parameters_are_all_reported(api, data):
    body = bundle(api, "Patient?shoe-size=42&gender=female&hair=brown")
    assert ids(api, "Patient?shoe-size=42&gender=female&hair=brown") == {data["female"]}
    diagnostics = outcome_entries(body)[0]["issue"][0]["diagnostics"]
    assert "shoe-size" in diagnostics and "hair" in diagnostics
    assert applied(body) == [("gender", "female")]


def test_no_outcome_entry_when_everything_was_applied(api, data):
    body = bundle(api, "Patient?gender=female&birthdate=1982")
    assert outcome_entries(body) == []
    assert applied(body) == [("gender", "female"), ("birthdate", "1982")]


def test_self_link_keeps_modifiers_and_repeats(api, data):
    body = bundle(api, "Patient?gender:not=male&birthdate=ge1950&birthdate=lt1990&x=1")
    assert applied(body) == [
        ("gender:not", "male"),
        ("birthdate", "ge1950"),
        ("birthdate", "lt1990"),
    ]


@pytest.mark.parametrize(
    "query",
    [
        "Patient?birthdate=notadate",
        "Patient?birthdate=2026-13-01",
        "Patient?birthdate=gt",
        "Patient?gender=|",
        "Patient?gender:missing=maybe",
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR",
        "Patient?organization=not/a/reference",
        "Patient?_has:Observation:patient=x",
        "Patient?_count=-1",
        "Patient?_count=many",
        "Observation?value-quantity=heavy",
        "Observation?value-quantity=5|http://unitsofmeasure.org",
        "Observation?component-code-value-quantity=8480-6",
        "Observation?code.name=x",
        "RiskAssessment?probability=high",
    ],
)
@pytest.mark.parametrize("headers", [{}, STRICT], ids=["lenient", "strict"])
def test_invalid_values_are_400_with_an_outcome_whatever_the_handling(api, data, query, headers):
    assert_outcome(search(api, query, **headers))


def test_empty_result_is_a_searchset_with_total_0(api, data):
    for query in (
        "Patient?gender=other",
        "Patient?birthdate=1800",
        "Encounter",
        "Patient?_id=nobody",
    ):
        body = bundle(api, query)
        assert body["total"] == 0
        assert matches(body) == []
        assert link(body, "self")
        assert link(body, "next") is None


def test_empty_result_with_an_ignored_parameter_still_reports_it(api, data):
    body = bundle(api, "Patient?gender=other&shoe-size=42")
    assert body["total"] == 0
    assert matches(body) == []
    assert len(outcome_entries(body)) == 1


def test_strict_also_applies_to_post_search(api, data):
    response = api.post(
        "/fhir/Patient/_search",
        data="gender=male&shoe-size=42",
        content_type="application/x-www-form-urlencoded",
        **STRICT,
    )
    assert response.status_code == 400
    response = api.post(
        "/fhir/Patient/_search",
        data="gender=male&shoe-size=42",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200


def test_prefer_header_with_other_preferences(api, data):
    headers = {"HTTP_PREFER": "return=representation, handling=strict"}
    assert_outcome(search(api, "Patient?shoe-size=42", **headers))
    headers = {"HTTP_PREFER": "handling=lenient; respond-async"}
    assert bundle(api, "Patient?shoe-size=42", **headers)["total"] == 2


def test_unknown_parameter_in_a_conditional_interaction_is_refused(api, data):
    # A condition must never be broadened by ignoring part of it.
    response = api.fhir(
        "PUT",
        "/fhir/Patient?gender=male&shoe-size=42",
        {"resourceType": "Patient", "gender": "male"},
    )
    assert_outcome(response)


def test_unknown_type(api, data):
    response = search(api, "Unicorn?name=x")
    assert response.status_code in (400, 404)
    assert response.json_body["resourceType"] == "OperationOutcome"
