"""reference search (hl7.org/fhir/R4B/search.html#reference), chaining (#chaining), reverse
chaining (#has), and the common parameters _id, _lastUpdated, _list."""

from __future__ import annotations

import pytest

from .search_helpers import (
    LOINC,
    STRICT,
    bundle,
    codeable,
    ids,
    observation,
    outcome_entries,
    put,
    ref,
    search,
)

MRN = "http://hospital.example.org/mrn"


@pytest.fixture
def data(api):
    """Two hospitals, two GPs, patients, a group, encounters, observations, a report, a list."""
    put(api, {"resourceType": "Organization", "id": "acme", "name": "Acme Hospital"})
    put(api, {"resourceType": "Organization", "id": "good", "name": "Good Health Clinic"})
    put(
        api,
        {
            "resourceType": "Practitioner",
            "id": "dr-smith",
            "name": [{"family": "Smith", "given": ["Sarah"]}],
        },
    )
    put(
        api,
        {"resourceType": "Practitioner", "id": "dr-jones", "name": [{"family": "Jones"}]},
    )
    put(
        api,
        {
            "resourceType": "Patient",
            "id": "peter",
            "gender": "male",
            "name": [{"family": "Chalmers", "given": ["Peter"]}],
            "identifier": [{"system": MRN, "value": "MRN-1"}],
            "managingOrganization": ref("Organization/acme"),
            "generalPractitioner": [ref("Practitioner/dr-smith")],
        },
    )
    put(
        api,
        {
            "resourceType": "Patient",
            "id": "paula",
            "gender": "female",
            "name": [{"family": "Paulsen", "given": ["Paula"]}],
            "managingOrganization": ref("Organization/good"),
            "generalPractitioner": [ref("Organization/good")],
        },
    )
    put(api, {"resourceType": "Patient", "id": "quinn", "name": [{"family": "Quinn"}]})
    # A Group and a Location that share ids and names with patients.
    put(
        api,
        {
            "resourceType": "Group",
            "id": "peter",
            "type": "person",
            "actual": True,
            "member": [{"entity": ref("Patient/peter")}, {"entity": ref("Patient/paula")}],
        },
    )
    put(api, {"resourceType": "Location", "id": "ward-7", "name": "Peterborough ward 7"})

    put(
        api,
        {
            "resourceType": "Encounter",
            "id": "enc-peter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": ref("Patient/peter"),
            "serviceProvider": ref("Organization/acme"),
        },
    )
    put(
        api,
        {
            "resourceType": "Encounter",
            "id": "enc-paula",
            "status": "finished",
            "class": {"code": "IMP"},
            "subject": ref("Patient/paula"),
        },
    )
    put(
        api,
        {
            "resourceType": "Encounter",
            "id": "enc-group",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": ref("Group/peter"),
        },
    )

    def obs(obs_id: str, target: str | None, code: str, **extra) -> None:
        put(api, {**observation(target, code, value=1, unit="1"), "id": obs_id, **extra})

    obs("hr-peter", "Patient/peter", "8867-4", encounter=ref("Encounter/enc-peter"))
    obs(
        "hb-peter",
        "Patient/peter",
        "718-7",
        performer=[ref("Practitioner/dr-jones")],
    )
    obs("hr-paula", "Patient/paula", "8867-4", encounter=ref("Encounter/enc-paula"))
    obs("hr-group", "Group/peter", "8867-4", encounter=ref("Encounter/enc-group"))
    obs("hr-ward", "Location/ward-7", "8867-4")
    obs("hr-nobody", None, "8867-4")
    # A subject given by identifier only (a logical reference).
    logical = {"identifier": {"system": MRN, "value": "MRN-1"}, "display": "Peter"}
    obs("hr-logical", None, "8867-4", subject=logical)
    # A subject by an absolute URL to this server.
    obs("hr-absolute", "http://testserver/fhir/Patient/paula", "8867-4")

    put(
        api,
        {
            "resourceType": "DiagnosticReport",
            "id": "cbc-peter",
            "status": "final",
            "code": codeable(LOINC, "58410-2", "CBC panel"),
            "subject": ref("Patient/peter"),
            "result": [ref("Observation/hb-peter")],
        },
    )
    put(
        api,
        {
            "resourceType": "Condition",
            "id": "cond-paula",
            "subject": ref("Patient/paula"),
            "code": codeable("http://snomed.info/sct", "38341003", "Hypertension"),
        },
    )
    put(
        api,
        {
            "resourceType": "List",
            "id": "ward-round",
            "status": "current",
            "mode": "working",
            "entry": [
                {"item": ref("Patient/peter")},
                {"item": ref("Patient/quinn")},
                {"item": ref("Observation/hr-paula")},
            ],
        },
    )


def test_reference_by_type_and_id(api, data):
    assert ids(api, "Observation?subject=Patient/peter") == {"hr-peter", "hb-peter"}
    assert ids(api, "Observation?subject=Group/peter") == {"hr-group"}
    assert ids(api, "Observation?subject=Patient/nobody") == set()


def test_reference_by_id_alone_matches_any_target_type(api, data):
    assert ids(api, "Observation?subject=peter") == {"hr-peter", "hb-peter", "hr-group"}
    # patient= only targets Patient
    assert ids(api, "Observation?patient=peter") == {"hr-peter", "hb-peter"}


def test_type_modifier(api, data):
    assert ids(api, "Observation?subject:Patient=peter") == {"hr-peter", "hb-peter"}
    assert ids(api, "Observation?subject:Group=peter") == {"hr-group"}
    assert ids(api, "Observation?subject:Location=ward-7") == {"hr-ward"}
    assert ids(api, "Observation?subject:Group=Patient/peter") == set()


def test_absolute_url_of_this_server_matches_local_references(api, data):
    assert ids(api, "Observation?subject=http://testserver/fhir/Patient/peter") >= {
        "hr-peter",
        "hb-peter",
    }
    # stored as an absolute URL, found by the relative form
    assert ids(api, "Observation?subject=Patient/paula") == {"hr-paula", "hr-absolute"}


def test_absolute_url_of_another_server_is_found_by_that_url(api, data):
    remote = "http://other.example.org/fhir/Patient/peter"
    put(api, {**observation(remote, "8867-4"), "id": "hr-remote"})
    assert "hr-remote" in ids(api, f"Observation?subject={remote}")


@pytest.fixture
def base_url(settings):
    """This server's base configured, as it is in production behind a proxy."""
    settings.FHIR_BASE_URL = "http://testserver/fhir"


def test_another_servers_patient_is_not_ours(api, data, base_url):
    remote = "http://other.example.org/fhir/Patient/peter"
    put(api, {**observation(remote, "8867-4"), "id": "hr-remote"})
    put(
        api,
        {
            "resourceType": "List",
            "id": "remote-list",
            "status": "current",
            "mode": "working",
            "entry": [{"item": ref(remote)}],
        },
    )
    assert ids(api, "Observation?subject=Patient/peter") == {"hr-peter", "hb-peter"}
    assert ids(api, "Observation?subject:Patient=peter") == {"hr-peter", "hb-peter"}
    assert ids(api, "Observation?patient=peter&code=8867-4") == {"hr-peter"}
    assert ids(api, "Observation?subject=http://testserver/fhir/Patient/peter") == {
        "hr-peter",
        "hb-peter",
    }
    assert ids(api, f"Observation?subject={remote}") == {"hr-remote"}
    # an absolute reference to this server is ours
    assert ids(api, "Observation?subject=Patient/paula") == {"hr-paula", "hr-absolute"}
    # chains, _has and _list do not follow the remote reference to our peter either
    assert ids(api, "Observation?subject:Patient.name=chalmers") == {"hr-peter", "hb-peter"}
    assert "hr-remote" not in ids(api, "Observation?subject.name=peter")
    assert ids(api, "Patient?_has:Observation:subject:code=8867-4") == {"peter", "paula"}
    assert ids(api, "Patient?_has:Observation:subject:_id=hr-remote") == set()
    assert ids(api, "Patient?_list=remote-list") == set()


def test_another_servers_patient_without_a_configured_base(api, data):
    """Without FHIR_BASE_URL our base is the one the request was addressed to
    (http://testserver/fhir): another server's Patient/peter is not ours either."""
    remote = "http://other.example.org/fhir/Patient/peter"
    put(api, {**observation(remote, "8867-4"), "id": "hr-remote"})
    assert ids(api, "Observation?subject=Patient/peter") == {"hr-peter", "hb-peter"}
    assert ids(api, "Observation?patient=peter&code=8867-4") == {"hr-peter"}
    assert ids(api, f"Observation?subject={remote}") == {"hr-remote"}
    assert ids(api, "Observation?subject=Patient/paula") == {"hr-paula", "hr-absolute"}
    assert "hr-remote" not in ids(api, "Observation?subject.name=peter")
    assert ids(api, "Patient?_has:Observation:subject:_id=hr-remote") == set()
    # _include does not bring our peter for the remote reference, in either include path
    for query in (
        "Observation?_id=hr-remote&_include=Observation:subject",
        "Observation?_id=hr-remote&_include=Observation:subject&_sort=_id",
        "Observation?_id=hr-absolute&_include=Observation:subject",
    ):
        body = bundle(api, query)
        included = {e["resource"]["id"] for e in body.get("entry", [])} - {
            "hr-remote",
            "hr-absolute",
        }
        assert included == ({"paula"} if "hr-absolute" in query else set()), query
    body = bundle(api, "Patient?_id=peter&_revinclude=Observation:subject")
    assert {e["resource"]["id"] for e in body["entry"]} == {"peter", "hr-peter", "hb-peter"}


def test_or_and(api, data):
    assert ids(api, "Observation?subject=Patient/peter,Location/ward-7") == {
        "hr-peter",
        "hb-peter",
        "hr-ward",
    }
    assert ids(api, "Observation?subject=Patient/peter&code=8867-4") == {"hr-peter"}
    assert ids(api, "Observation?subject=Patient/peter&performer=Practitioner/dr-jones") == {
        "hb-peter"
    }


def test_identifier_modifier(api, data):
    assert ids(api, f"Observation?subject:identifier={MRN}|MRN-1") == {"hr-logical"}
    assert ids(api, "Observation?subject:identifier=MRN-1") == {"hr-logical"}
    assert ids(api, f"Observation?subject:identifier={MRN}|MRN-2") == set()


def test_missing(api, data):
    assert ids(api, "Observation?subject:missing=true") == {"hr-nobody"}
    assert "hr-nobody" not in ids(api, "Observation?subject:missing=false")
    assert ids(api, "Observation?encounter:missing=false") == {"hr-peter", "hr-paula", "hr-group"}


def test_chain_with_type(api, data):
    assert ids(api, "Observation?subject:Patient.name=peter") == {"hr-peter", "hb-peter"}
    assert ids(api, "Observation?subject:Patient.name=chalmers,paula") == {
        "hr-peter",
        "hb-peter",
        "hr-paula",
        "hr-absolute",
    }
    assert ids(api, f"Observation?subject:Patient.identifier={MRN}|MRN-1") == {
        "hr-peter",
        "hb-peter",
    }
    assert ids(api, "Observation?subject:Patient.gender=female") == {"hr-paula", "hr-absolute"}


def test_chain_on_a_single_target_parameter(api, data):
    assert ids(api, "Observation?patient.name=peter") == {"hr-peter", "hb-peter"}
    assert ids(api, "DiagnosticReport?result.code=718-7") == {"cbc-peter"}


def test_chain_without_type_searches_every_target_that_has_the_parameter(api, data):
    # Patient.name "Peter" and Location.name "Peterborough ward 7"
    assert ids(api, "Observation?subject.name=peter") == {"hr-peter", "hb-peter", "hr-ward"}
    # Group has no name: the chain does not fail because of it
    assert ids(api, "Observation?subject.name=quinn") == set()


def test_chain_of_two_and_three_levels(api, data):
    assert ids(api, "Encounter?subject:Patient.organization.name=acme") == {"enc-peter"}
    assert ids(api, "Observation?subject:Patient.organization.name=good") == {
        "hr-paula",
        "hr-absolute",
    }
    assert ids(api, "Observation?subject:Patient.general-practitioner:Practitioner.name=smith") == {
        "hr-peter",
        "hb-peter",
    }
    assert ids(api, "Observation?subject:Patient.general-practitioner:Organization.name=good") == {
        "hr-paula",
        "hr-absolute",
    }
    assert ids(api, "Observation?encounter.subject:Patient.organization.name=acme") == {"hr-peter"}


def test_chain_ending_in_id_and_missing(api, data):
    assert ids(api, "Observation?subject:Patient._id=quinn") == set()
    assert ids(api, "Observation?subject:Patient._id=paula") == {"hr-paula", "hr-absolute"}
    assert ids(api, "Encounter?subject:Patient.gender:missing=false") == {
        "enc-peter",
        "enc-paula",
    }


def test_two_chains_are_anded(api, data):
    assert ids(api, "Observation?subject:Patient.name=peter&subject:Patient.gender=male") == {
        "hr-peter",
        "hb-peter",
    }
    assert ids(api, "Observation?subject:Patient.name=paula&subject:Patient.gender=male") == set()


def test_chain_errors(api, data):
    # chaining a parameter that is not a reference
    assert search(api, "Observation?code.name=x").status_code == 400
    # an unknown parameter at the end of a chain: refused when strict, ignored when lenient
    assert search(api, "Observation?subject:Patient.shoe-size=42", **STRICT).status_code == 400
    body = bundle(api, "Observation?subject:Patient.shoe-size=42")
    assert body["total"] == 8
    assert outcome_entries(body)


def test_has(api, data):
    assert ids(api, "Patient?_has:Observation:patient:code=8867-4") == {"peter", "paula"}
    assert ids(api, "Patient?_has:Observation:patient:code=718-7") == {"peter"}
    assert ids(api, "Patient?_has:Observation:subject:code=8867-4") == {"peter", "paula"}
    assert ids(api, "Group?_has:Observation:subject:code=8867-4") == {"peter"}
    assert ids(api, f"Patient?_has:Observation:patient:code={LOINC}|1234-5") == set()


def test_has_with_or_and_and(api, data):
    assert ids(api, "Patient?_has:Observation:patient:code=718-7,8867-4") == {"peter", "paula"}
    assert ids(
        api,
        "Patient?_has:Observation:patient:code=8867-4&_has:Condition:subject:code=38341003",
    ) == {"paula"}
    assert ids(api, "Patient?_has:Observation:patient:code=8867-4&gender=male") == {"peter"}


def test_has_with_a_chain_inside(api, data):
    assert ids(api, "Patient?_has:Observation:patient:performer:Practitioner.name=jones") == {
        "peter"
    }
    assert ids(
        api, "Organization?_has:Patient:organization:_has:Condition:subject:code=38341003"
    ) == {"good"}


def test_nested_has(api, data):
    assert ids(
        api, "Patient?_has:Observation:patient:_has:DiagnosticReport:result:code=58410-2"
    ) == {"peter"}
    assert ids(
        api, "Practitioner?_has:Patient:general-practitioner:_has:Encounter:subject:class=AMB"
    ) == {"dr-smith"}


def test_has_ignores_deleted_sources(api, data):
    assert api.fhir("DELETE", "/fhir/Condition/cond-paula").status_code in (200, 204)
    assert ids(api, "Patient?_has:Condition:subject:code=38341003") == set()


def test_has_errors(api, data):
    # too few parts
    assert search(api, "Patient?_has:Observation:patient=x").status_code == 400
    # an unknown parameter of the source: refused when strict
    response = search(api, "Patient?_has:Observation:patient:shoe-size=42", **STRICT)
    assert response.status_code == 400
    # an unknown reference parameter or type: unknown parameters, ignored when lenient
    for query in (
        "Patient?_has:Observation:shoe:code=8867-4",
        "Patient?_has:Unicorn:patient:code=8867-4",
    ):
        assert search(api, query, **STRICT).status_code == 400
        body = bundle(api, query)
        assert body["total"] == 3
        assert outcome_entries(body)


def test_id_and_last_updated_with_references(api, data):
    assert ids(api, "Observation?_id=hr-peter,hr-paula,hb-peter&subject=Patient/peter") == {
        "hr-peter",
        "hb-peter",
    }
    assert ids(api, "Observation?_id=hr-peter&_lastUpdated=ge2020-01-01&patient=peter") == {
        "hr-peter"
    }
    assert ids(api, "Observation?_lastUpdated=lt2020-01-01&patient=peter") == set()
    assert ids(api, "Observation?_id:not=hr-peter&patient=peter") == {"hb-peter"}


def test_list(api, data):
    assert ids(api, "Patient?_list=ward-round") == {"peter", "quinn"}
    assert ids(api, "Observation?_list=ward-round") == {"hr-paula"}
    assert ids(api, "Patient?_list=ward-round&gender=male") == {"peter"}
    assert ids(api, "Patient?_list=no-such-list") == set()
    assert ids(api, "Patient?_list=ward-round,no-such-list") == {"peter", "quinn"}


def test_list_follows_changes_of_the_list(api, data):
    body = api.fhir("GET", "/fhir/List/ward-round").json_body
    body["entry"] = [{"item": ref("Patient/paula")}]
    assert api.fhir("PUT", "/fhir/List/ward-round", body).status_code == 200
    assert ids(api, "Patient?_list=ward-round") == {"paula"}
    assert api.fhir("DELETE", "/fhir/List/ward-round").status_code in (200, 204)
    assert ids(api, "Patient?_list=ward-round") == set()


def test_functional_list_is_not_supported(api, data):
    assert search(api, "Patient?_list=$current-problems", **STRICT).status_code == 400
    body = bundle(api, "Patient?_list=$current-problems")
    assert body["total"] == 3
    assert outcome_entries(body)


def test_deep_chain(api, data):
    put(api, {"resourceType": "Organization", "id": "holding", "name": "Acme Holding"})
    put(
        api,
        {
            "resourceType": "Organization",
            "id": "acme-group",
            "name": "Acme Group",
            "partOf": ref("Organization/holding"),
        },
    )
    body = api.fhir("GET", "/fhir/Organization/acme").json_body
    body["partOf"] = ref("Organization/acme-group")
    assert api.fhir("PUT", "/fhir/Organization/acme", body).status_code == 200
    assert ids(api, "Patient?organization.partof.partof.name=acme%20holding") == {"peter"}
    assert ids(
        api, "Observation?encounter.subject:Patient.organization.partof.name=acme%20group"
    ) == {"hr-peter"}  # four links
    assert ids(api, "Encounter?subject:Patient.organization.partof.partof.name=acme%20holding") == {
        "enc-peter"
    }
    # four links, the most a criterion may follow (SQLite would not take many more)
    assert ids(
        api,
        "Observation?encounter.subject:Patient.organization._has:Patient:organization"
        ":gender:not=male",
    ) == {"hr-paula"}
    assert ids(
        api, "Patient?_has:Observation:subject:encounter.subject:Patient.organization.name=acme"
    ) == {"peter"}


def test_too_deep_chain_is_not_supported(api, data):
    deep = "Observation?encounter.subject:Patient.organization.partof.partof.partof.name=x"
    response = search(api, deep, **STRICT)
    assert response.status_code == 400
    assert "more than 4" in response.json_body["issue"][0]["diagnostics"]
    body = bundle(api, deep)
    assert body["total"] == 8
    assert outcome_entries(body)
    nested = "Patient?" + "_has:Patient:link:" * 5 + "gender=male"
    assert search(api, nested, **STRICT).status_code == 400


def test_nested_has_four_deep(api, data):
    put(api, {"resourceType": "Patient", "id": "p1", "link": [link("peter")]})
    put(api, {"resourceType": "Patient", "id": "p2", "link": [link("p1")]})
    put(api, {"resourceType": "Patient", "id": "p3", "link": [link("p2")]})
    put(api, {"resourceType": "Patient", "id": "p4", "link": [link("p3")]})
    assert ids(api, "Patient?_has:Patient:link:_id=p1") == {"peter"}
    assert ids(api, "Patient?_has:Patient:link:_has:Patient:link:_id=p4") == {"p2"}
    assert ids(api, "Patient?" + "_has:Patient:link:" * 4 + "_id=p4") == {"peter"}
    assert (
        ids(api, "Patient?" + "_has:Patient:link:" * 3 + "_has:Observation:subject:code=718-7")
        == set()
    )
    assert ids(api, "Patient?_has:Patient:link:_has:Observation:subject:code=718-7") == set()
    assert ids(api, "Patient?link:Patient._has:Observation:subject:code=718-7") == {"p1"}


def link(target: str) -> dict:
    return {"other": ref(f"Patient/{target}"), "type": "seealso"}


def test_canonical_reference_with_and_without_version(api):
    phq9 = "http://example.org/fhir/Questionnaire/phq9"

    def response(questionnaire: str) -> str:
        body = {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "questionnaire": questionnaire,
        }
        return api.fhir("POST", "/fhir/QuestionnaireResponse", body).json_body["id"]

    v2 = response(f"{phq9}|2.0")
    v1 = response(f"{phq9}|1.0")
    plain = response(phq9)
    short = response(f"{phq9}-short")
    assert ids(api, f"QuestionnaireResponse?questionnaire={phq9}") == {v1, v2, plain}
    found = ids(api, f"QuestionnaireResponse?questionnaire={phq9}|2.0")
    assert v2 in found and v1 not in found and short not in found
    assert ids(api, f"QuestionnaireResponse?questionnaire={phq9}-short") == {short}


def test_id_and_last_updated_missing(api, data):
    assert ids(api, "Patient?_id:missing=true") == set()
    assert ids(api, "Patient?_id:missing=false") == {"peter", "paula", "quinn"}
    assert ids(api, "Patient?_lastUpdated:missing=true") == set()
    assert ids(api, "Patient?_lastUpdated:missing=false&gender=male") == {"peter"}
    assert search(api, "Patient?_id:missing=maybe").status_code == 400
