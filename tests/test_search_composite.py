"""composite search (hl7.org/fhir/R4B/search.html#composite): ``token$value`` where both halves
hold on the same element: code-value-quantity, component-code-value-quantity,
combo-code-value-quantity, code-value-concept, code-value-date, code-value-string."""

from __future__ import annotations

import pytest

from .search_helpers import (
    LOINC,
    SNOMED,
    STRICT,
    UCUM,
    codeable,
    create,
    ids,
    observation,
    put,
    search,
)

SYSTOLIC, DIASTOLIC, BP_PANEL = "8480-6", "8462-4", "85354-9"


def bp(patient: str, systolic: float, diastolic: float, **extra) -> dict:
    return observation(
        f"Patient/{patient}",
        BP_PANEL,
        display="Blood pressure panel",
        components=[(SYSTOLIC, systolic, "mm[Hg]"), (DIASTOLIC, diastolic, "mm[Hg]")],
        **extra,
    )


@pytest.fixture
def data(api):
    put(api, {"resourceType": "Patient", "id": "p1"})
    put(api, {"resourceType": "Patient", "id": "p2"})
    d = {}
    # Systolic 120 and diastolic 140 in one panel: no component has systolic > 130.
    d["bp_odd"] = create(api, bp("p1", 120, 140))
    d["bp_high"] = create(api, bp("p1", 150, 90))
    d["bp_normal"] = create(api, bp("p2", 118, 76))
    # A systolic pressure recorded on its own.
    d["sys_alone"] = create(api, observation("Patient/p2", SYSTOLIC, value=135, unit="mm[Hg]"))
    d["hr"] = create(api, observation("Patient/p1", "8867-4", value=135, unit="/min"))
    d["covid_pos"] = create(
        api,
        observation(
            "Patient/p1",
            "94500-6",
            value={"valueCodeableConcept": codeable(SNOMED, "260373001", "Detected")},
        ),
    )
    d["covid_neg"] = create(
        api,
        observation(
            "Patient/p2",
            "94500-6",
            value={"valueCodeableConcept": codeable(SNOMED, "260415000", "Not detected")},
        ),
    )
    d["lmp"] = create(
        api,
        observation("Patient/p1", "8665-2", value={"valueDateTime": "2026-02-14"}),
    )
    d["comment"] = create(api, observation("Patient/p2", "48767-8", value="Patient fasting"))
    return d


def test_code_value_quantity(api, data):
    assert ids(api, f"Observation?code-value-quantity={LOINC}|{SYSTOLIC}$gt130") == {
        data["sys_alone"]
    }
    assert ids(api, f"Observation?code-value-quantity={SYSTOLIC}$gt130") == {data["sys_alone"]}
    # the heart rate has the value but not the code
    assert ids(api, "Observation?code-value-quantity=8867-4$135") == {data["hr"]}
    assert ids(api, f"Observation?code-value-quantity={SYSTOLIC}$lt130") == set()


def test_component_code_value_quantity_needs_both_halves_on_one_component(api, data):
    found = ids(api, f"Observation?component-code-value-quantity={SYSTOLIC}$gt130")
    assert found == {data["bp_high"]}
    assert data["bp_odd"] not in found
    assert ids(api, f"Observation?component-code-value-quantity={DIASTOLIC}$gt130") == {
        data["bp_odd"]
    }
    assert ids(api, f"Observation?component-code-value-quantity={LOINC}|{SYSTOLIC}$le120") == {
        data["bp_odd"],
        data["bp_normal"],
    }


def test_combo_code_value_quantity_looks_at_the_observation_and_its_components(api, data):
    assert ids(api, f"Observation?combo-code-value-quantity={SYSTOLIC}$gt130") == {
        data["bp_high"],
        data["sys_alone"],
    }


def test_composite_with_units(api, data):
    mmhg = f"{UCUM}|mm[Hg]"
    assert ids(api, f"Observation?component-code-value-quantity={SYSTOLIC}$gt130|{mmhg}") == {
        data["bp_high"]
    }
    # 17 kPa is 127.5 mm[Hg]: found by converting to the canonical unit
    kpa = f"{UCUM}|kPa"
    assert ids(api, f"Observation?combo-code-value-quantity={SYSTOLIC}$gt17|{kpa}") == {
        data["bp_high"],
        data["sys_alone"],
    }
    assert ids(api, f"Observation?code-value-quantity=8867-4$135|{mmhg}") == set()


def test_or_and_and(api, data):
    assert ids(
        api,
        f"Observation?component-code-value-quantity={SYSTOLIC}$gt130,{DIASTOLIC}$gt130",
    ) == {data["bp_high"], data["bp_odd"]}
    assert ids(
        api,
        f"Observation?component-code-value-quantity={SYSTOLIC}$gt130"
        f"&component-code-value-quantity={DIASTOLIC}$lt100",
    ) == {data["bp_high"]}
    assert (
        ids(
            api,
            f"Observation?component-code-value-quantity={SYSTOLIC}$gt130"
            f"&component-code-value-quantity={DIASTOLIC}$gt100",
        )
        == set()
    )


def test_prefixes_and_precision(api, data):
    assert ids(api, f"Observation?component-code-value-quantity={SYSTOLIC}$150") == {
        data["bp_high"]
    }
    assert ids(api, f"Observation?component-code-value-quantity={SYSTOLIC}$ne150") == {
        data["bp_odd"],
        data["bp_normal"],
    }
    assert ids(api, f"Observation?component-code-value-quantity={SYSTOLIC}$ge150") == {
        data["bp_high"]
    }
    # 1.2e2 is 115 to 125
    assert ids(api, f"Observation?component-code-value-quantity={SYSTOLIC}$1.2e2") == {
        data["bp_odd"],
        data["bp_normal"],
    }


def test_code_value_concept(api, data):
    assert ids(api, f"Observation?code-value-concept=94500-6${SNOMED}|260373001") == {
        data["covid_pos"]
    }
    assert ids(api, "Observation?code-value-concept=94500-6$260415000") == {data["covid_neg"]}
    assert ids(api, f"Observation?code-value-concept={LOINC}|94500-6${SNOMED}|") == {
        data["covid_pos"],
        data["covid_neg"],
    }
    assert ids(api, "Observation?code-value-concept=8867-4$260373001") == set()
    assert ids(api, "Observation?combo-code-value-concept=94500-6$260373001") == {data["covid_pos"]}


def test_code_value_date(api, data):
    assert ids(api, "Observation?code-value-date=8665-2$2026-02") == {data["lmp"]}
    assert ids(api, "Observation?code-value-date=8665-2$2026-02-14") == {data["lmp"]}
    assert ids(api, "Observation?code-value-date=8665-2$gt2026-03") == set()
    assert ids(api, "Observation?code-value-date=8665-2$lt2026-03") == {data["lmp"]}
    assert ids(api, "Observation?code-value-date=94500-6$2026-02") == set()


def test_code_value_string(api, data):
    assert ids(api, "Observation?code-value-string=48767-8$patient%20fast") == {data["comment"]}
    assert ids(api, "Observation?code-value-string=48767-8$FASTING") == set()
    assert ids(api, "Observation?code-value-string=8867-4$patient") == set()


def test_missing(api, data):
    with_components = {data["bp_odd"], data["bp_high"], data["bp_normal"]}
    assert ids(api, "Observation?component-code-value-quantity:missing=false") == with_components
    every = ids(api, "Observation")
    assert ids(api, "Observation?component-code-value-quantity:missing=true") == (
        every - with_components
    )


def test_with_patient(api, data):
    assert ids(api, f"Observation?patient=p1&component-code-value-quantity={SYSTOLIC}$gt100") == {
        data["bp_odd"],
        data["bp_high"],
    }
    assert ids(
        api, f"Observation?subject=Patient/p2&combo-code-value-quantity={SYSTOLIC}$gt100"
    ) == {
        data["bp_normal"],
        data["sys_alone"],
    }


def test_group_characteristic_value(api):
    smokers = create(
        api,
        {
            "resourceType": "Group",
            "type": "person",
            "actual": False,
            "characteristic": [
                {
                    "code": codeable(LOINC, "72166-2", "Tobacco smoking status"),
                    "valueCodeableConcept": codeable(SNOMED, "77176002", "Smoker"),
                    "exclude": False,
                },
                {
                    "code": codeable(SNOMED, "263495000", "Gender"),
                    "valueBoolean": True,
                    "exclude": False,
                },
            ],
        },
    )
    assert ids(api, f"Group?characteristic-value=72166-2${SNOMED}|77176002") == {smokers}
    assert ids(api, "Group?characteristic-value=263495000$true") == {smokers}
    assert ids(api, "Group?characteristic-value=72166-2$true") == set()


def test_invalid_composite_values(api, data):
    for value in (f"{SYSTOLIC}", f"{SYSTOLIC}$gtabc", f"{SYSTOLIC}$gt130|{UCUM}"):
        response = search(api, f"Observation?component-code-value-quantity={value}")
        assert response.status_code == 400, value
        assert response.json_body["resourceType"] == "OperationOutcome"
    response = search(api, "Observation?code-value-date=8665-2$notadate")
    assert response.status_code == 400


def test_unsupported_modifier(api, data):
    query = f"Observation?component-code-value-quantity:exact={SYSTOLIC}$gt130"
    assert search(api, query, **STRICT).status_code == 400
