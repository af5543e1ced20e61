"""token search (hl7.org/fhir/R4B/search.html#token): system|code, |code, system|, code, on
CodeableConcept, Coding, Identifier, ContactPoint, code and boolean; :text, :not, :of-type,
:missing; OR with commas (``\\,`` escaped) and AND with repeated parameters."""

from __future__ import annotations

import pytest

from .search_helpers import LOINC, SNOMED, STRICT, codeable, create, ids, observation, search

MRN = "http://hospital.example.org/mrn"
SSN = "http://hl7.org/fhir/sid/us-ssn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOCAL = "http://hospital.example.org/codes"


@pytest.fixture
def data(api):
    """Patients with identifiers and telecoms, Observations and Conditions with codes."""
    d: dict[str, str] = {}
    d["alice"] = create(
        api,
        {
            "resourceType": "Patient",
            "active": True,
            "gender": "female",
            "identifier": [
                {
                    "system": MRN,
                    "value": "MRN-1001",
                    "type": {
                        "coding": [{"system": V2_0203, "code": "MR"}],
                        "text": "Medical record",
                    },
                },
                {
                    "system": SSN,
                    "value": "123-45-6789",
                    "type": {"coding": [{"system": V2_0203, "code": "SS"}]},
                },
            ],
            "telecom": [
                {"system": "phone", "value": "+1 555 0100", "use": "home"},
                {"system": "email", "value": "alice@example.org"},
            ],
            "name": [{"family": "Andrews", "given": ["Alice"]}],
        },
    )
    d["bob"] = create(
        api,
        {
            "resourceType": "Patient",
            "active": False,
            "gender": "male",
            "identifier": [
                {
                    "system": MRN,
                    "value": "MRN-1002",
                    "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                },
                # The same value in another system.
                {"system": "http://other.example.org/ids", "value": "MRN-1001"},
            ],
            "telecom": [{"system": "phone", "value": "+1 555 0200"}],
            "deceasedBoolean": True,
        },
    )
    # A patient with neither gender, active, identifier nor telecom.
    d["carol"] = create(api, {"resourceType": "Patient", "name": [{"family": "Cole"}]})

    d["hr"] = create(
        api,
        observation(f"Patient/{d['alice']}", "8867-4", display="Heart rate", value=72, unit="/min"),
    )
    d["weight"] = create(
        api,
        {
            **observation(f"Patient/{d['alice']}", "29463-7", display="Body weight"),
            # Two codings in one CodeableConcept, and a text different from both displays.
            "code": {
                "coding": [
                    {"system": LOINC, "code": "29463-7", "display": "Body weight"},
                    {"system": SNOMED, "code": "27113001", "display": "Body weight finding"},
                ],
                "text": "Weight measured at admission",
            },
        },
    )
    # A code without a system.
    d["nosys"] = create(api, observation(f"Patient/{d['bob']}", "8867-4", system=""))
    # A code in a local system that also uses the code 8867-4.
    d["local"] = create(api, observation(f"Patient/{d['bob']}", "8867-4", system=LOCAL))
    d["prelim"] = create(
        api,
        observation(
            f"Patient/{d['bob']}", "8310-5", display="Body temperature", status="preliminary"
        ),
    )
    # An Observation with only a text, no coding.
    d["textonly"] = create(
        api,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Patient reported pain score"},
        },
    )
    # A code containing a comma, searched with an escaped comma.
    d["comma"] = create(api, observation(None, "A,B", system=LOCAL))

    d["diabetes"] = create(
        api,
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{d['alice']}"},
            "code": codeable(SNOMED, "44054006", "Diabetes mellitus type 2"),
            "clinicalStatus": codeable(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
            ),
        },
    )
    d["asthma"] = create(
        api,
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{d['bob']}"},
            "code": codeable(SNOMED, "195967001", "Asthma"),
            "clinicalStatus": codeable(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved"
            ),
        },
    )
    return d


def test_code_alone_matches_any_system(api, data):
    assert ids(api, "Observation?code=8867-4") == {data["hr"], data["nosys"], data["local"]}


def test_system_and_code(api, data):
    assert ids(api, f"Observation?code={LOINC}|8867-4") == {data["hr"]}
    assert ids(api, f"Observation?code={LOCAL}|8867-4") == {data["local"]}


def test_bar_code_matches_only_codes_without_a_system(api, data):
    assert ids(api, "Observation?code=|8867-4") == {data["nosys"]}


def test_system_bar_matches_any_code_of_the_system(api, data):
    assert ids(api, f"Observation?code={SNOMED}|") == {data["weight"]}
    assert ids(api, f"Condition?code={SNOMED}|") == {data["diabetes"], data["asthma"]}


def test_any_coding_of_a_codeableconcept_matches(api, data):
    assert ids(api, f"Observation?code={SNOMED}|27113001") == {data["weight"]}
    assert ids(api, f"Observation?code={LOINC}|29463-7") == {data["weight"]}


def test_codes_are_case_sensitive(api, data):
    assert ids(api, f"Condition?code={SNOMED}|44054006") == {data["diabetes"]}
    assert ids(api, "Patient?gender=FEMALE") == set()


def test_or_with_commas_and_and_with_repeats(api, data):
    assert ids(api, f"Observation?code={LOINC}|8867-4,{LOINC}|8310-5") == {
        data["hr"],
        data["prelim"],
    }
    assert ids(api, f"Observation?code=8867-4&code={LOINC}|8867-4") == {data["hr"]}
    # AND of two codes of the same CodeableConcept
    assert ids(api, f"Observation?code={LOINC}|29463-7&code={SNOMED}|27113001") == {data["weight"]}
    assert ids(api, "Observation?code=8867-4&status=preliminary") == set()


def test_escaped_comma_is_part_of_the_code(api, data):
    assert ids(api, "Observation?code=A\\,B") == {data["comma"]}
    assert ids(api, f"Observation?code={LOCAL}|A\\,B") == {data["comma"]}
    # unescaped, it is two codes: A or B
    assert ids(api, "Observation?code=A,B") == set()


def test_escaped_bar_is_part_of_the_code(api):
    odd = create(api, observation(None, "x|y", system=LOCAL))
    assert ids(api, "Observation?code=x\\|y") == {odd}
    assert ids(api, f"Observation?code={LOCAL}|x\\|y") == {odd}
    # unescaped, the bar separates system x from code y
    assert ids(api, "Observation?code=x|y") == set()


def test_code_and_boolean_elements(api, data):
    assert ids(api, "Patient?gender=female") == {data["alice"]}
    assert ids(api, "Patient?gender=male,female") == {data["alice"], data["bob"]}
    assert ids(api, "Patient?active=true") == {data["alice"]}
    assert ids(api, "Patient?active=false") == {data["bob"]}
    assert ids(api, "Patient?deceased=true") == {data["bob"]}
    assert ids(api, "Observation?status=final") >= {data["hr"], data["weight"]}
    assert data["prelim"] not in ids(api, "Observation?status=final")


def test_identifier(api, data):
    assert ids(api, f"Patient?identifier={MRN}|MRN-1001") == {data["alice"]}
    assert ids(api, "Patient?identifier=MRN-1001") == {data["alice"], data["bob"]}
    assert ids(api, f"Patient?identifier={MRN}|") == {data["alice"], data["bob"]}
    assert ids(api, f"Patient?identifier={SSN}|123-45-6789") == {data["alice"]}
    assert ids(api, f"Patient?identifier={SSN}|MRN-1001") == set()


def test_identifier_of_type(api, data):
    assert ids(api, f"Patient?identifier:of-type={V2_0203}|MR|MRN-1001") == {data["alice"]}
    assert ids(api, f"Patient?identifier:of-type={V2_0203}|MR|MRN-1002") == {data["bob"]}
    assert ids(api, f"Patient?identifier:of-type={V2_0203}|SS|123-45-6789") == {data["alice"]}
    # The value exists, but not under that type.
    assert ids(api, f"Patient?identifier:of-type={V2_0203}|SS|MRN-1001") == set()
    assert ids(api, f"Patient?identifier:of-type={V2_0203}|MR|MRN-1001,{V2_0203}|MR|MRN-1002") == {
        data["alice"],
        data["bob"],
    }


def test_of_type_needs_three_parts(api, data):
    response = search(api, f"Patient?identifier:of-type={V2_0203}|MR")
    assert response.status_code == 400
    assert response.json_body["resourceType"] == "OperationOutcome"


def test_contactpoint_matches_on_its_value(api, data):
    assert ids(api, "Patient?telecom=%2B1%20555%200100") == {data["alice"]}
    assert ids(api, "Patient?phone=%2B1%20555%200200") == {data["bob"]}
    assert ids(api, "Patient?email=alice@example.org") == {data["alice"]}
    # the phone parameter only looks at phones
    assert ids(api, "Patient?phone=alice@example.org") == set()


def test_text_modifier_on_codeableconcept_text_and_coding_display(api, data):
    assert ids(api, "Observation?code:text=heart") == {data["hr"]}
    assert ids(api, "Observation?code:text=Heart%20RATE") == {data["hr"]}
    # CodeableConcept.text
    assert ids(api, "Observation?code:text=weight%20measured") == {data["weight"]}
    assert ids(api, "Observation?code:text=pain%20score") == {data["textonly"]}
    # Coding.display of a CodeableConcept that also has a text
    assert ids(api, "Observation?code:text=body%20weight%20finding") == {data["weight"]}
    assert ids(api, "Condition?code:text=asthma,diabetes") == {data["asthma"], data["diabetes"]}


def test_text_modifier_on_identifier_type_text(api, data):
    assert ids(api, "Patient?identifier:text=medical%20record") == {data["alice"]}


def test_not_excludes_matches_and_keeps_resources_without_the_element(api, data):
    assert ids(api, "Patient?gender:not=male") == {data["alice"], data["carol"]}
    assert ids(api, "Patient?active:not=true") == {data["bob"], data["carol"]}
    # several values: none of them
    assert ids(api, "Patient?gender:not=male,female") == {data["carol"]}
    every = ids(api, "Observation")
    not_hr = ids(api, f"Observation?code:not={LOINC}|8867-4")
    assert not_hr == every - {data["hr"]}
    assert data["textonly"] in not_hr and data["comma"] in not_hr


def test_not_with_other_criteria(api, data):
    assert ids(api, f"Observation?code=8867-4&code:not={LOINC}|8867-4") == {
        data["nosys"],
        data["local"],
    }
    assert ids(api, "Observation?status:not=final") == {data["prelim"]}


def test_missing(api, data):
    assert ids(api, "Patient?gender:missing=true") == {data["carol"]}
    assert ids(api, "Patient?gender:missing=false") == {data["alice"], data["bob"]}
    assert ids(api, "Patient?identifier:missing=true") == {data["carol"]}
    assert ids(api, "Patient?telecom:missing=false") == {data["alice"], data["bob"]}
    assert ids(api, "Patient?deceased:missing=true") == {data["alice"], data["carol"]}
    assert search(api, "Patient?gender:missing=maybe").status_code == 400


def test_id_and_last_updated_with_tokens(api, data):
    assert ids(api, f"Patient?_id={data['alice']},{data['bob']}&gender=male") == {data["bob"]}
    assert ids(api, f"Patient?_id={data['alice']}&_lastUpdated=gt2000-01-01") == {data["alice"]}
    assert ids(api, f"Patient?_id={data['alice']}&_lastUpdated=lt2000-01-01") == set()


def test_meta_tag_security_profile(api):
    tagged = create(
        api,
        {
            "resourceType": "Patient",
            "meta": {
                "tag": [{"system": "http://example.org/tags", "code": "research"}],
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "R",
                    }
                ],
                "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
            },
        },
    )
    plain = create(api, {"resourceType": "Patient"})
    assert ids(api, "Patient?_tag=research") == {tagged}
    assert ids(api, "Patient?_tag=http://example.org/tags|research") == {tagged}
    assert ids(api, "Patient?_tag:not=research") == {plain}
    assert ids(api, "Patient?_tag:missing=true") == {plain}
    confidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
    assert ids(api, f"Patient?_security={confidentiality}|R") == {tagged}
    profile = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    assert ids(api, f"Patient?_profile={profile}") == {tagged}
    assert ids(api, "Patient?_profile=http://example.org/other") == set()


def test_updated_resource_is_found_by_its_new_code_only(api, data):
    body = api.fhir("GET", f"/fhir/Observation/{data['prelim']}").json_body
    body["status"] = "final"
    body["code"] = codeable(LOINC, "9279-1", "Respiratory rate")
    assert api.fhir("PUT", f"/fhir/Observation/{data['prelim']}", body).status_code == 200
    assert ids(api, "Observation?code=8310-5") == set()
    assert ids(api, "Observation?code=9279-1&status=final") == {data["prelim"]}
    assert api.fhir("DELETE", f"/fhir/Observation/{data['prelim']}").status_code in (200, 204)
    assert ids(api, "Observation?code=9279-1") == set()


def test_empty_bar_is_refused(api, data):
    response = search(api, "Observation?code=|")
    assert response.status_code == 400
    assert response.json_body["resourceType"] == "OperationOutcome"


def test_unsupported_token_modifier(api, data):
    # :in needs a terminology service: refused when strict, ignored (and reported) when lenient.
    response = search(api, "Observation?code:in=http://example.org/ValueSet/vitals", **STRICT)
    assert response.status_code == 400
    assert len(ids(api, "Observation?code:in=http://example.org/ValueSet/vitals")) == 7


def test_empty_or_values_are_left_out(api, data):
    assert ids(api, f"Observation?code={LOINC}|8867-4,") == {data["hr"]}
    assert ids(api, f"Observation?code=,{LOINC}|8867-4") == {data["hr"]}
    # an empty code would otherwise match the CodeableConcept that has only a text
    assert data["textonly"] not in ids(api, "Observation?code=8867-4,,")
    assert search(api, "Observation?code=,").status_code == 400
