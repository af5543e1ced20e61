"""Observation ``combo-*`` parameters are answered from the rows of the parameters they unite.

``combo-code`` is ``code`` plus ``component-code``, ``combo-value-quantity`` is
``value-quantity`` plus ``component-value-quantity``, ``combo-code-value-quantity`` is
``code-value-quantity`` plus ``component-code-value-quantity`` (and so on for the concept and
data-absent-reason ones): no ``combo-*`` index row is written (``search.aliases``), and every
kind of search by them (values, modifiers, ``:missing``, composites, ``_sort``, ``_has``,
chains, patient-scoped) finds what the union of their parts finds.
"""

from __future__ import annotations

import pytest

from fhir_api.models import INDEX_MODELS, TokenIndex
from fhir_api.resource_types import RESOURCE_TYPES
from fhir_api.search import aliases
from fhir_api.search.extract import extract

from .search_helpers import LOINC, SNOMED, UCUM, bundle, codeable, create, ids, observation, put

SYSTOLIC, DIASTOLIC, BP_PANEL, HEART_RATE = "8480-6", "8462-4", "85354-9", "8867-4"
UNKNOWN = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def bp(patient: str, systolic: float, diastolic: float) -> dict:
    return observation(
        f"Patient/{patient}",
        BP_PANEL,
        display="Blood pressure panel",
        components=[(SYSTOLIC, systolic, "mm[Hg]"), (DIASTOLIC, diastolic, "mm[Hg]")],
    )


def found(api, query: str) -> set[str]:
    """The ids a search matches, with the total counted (``ids`` checks it and that no
    resource comes twice)."""
    return ids(api, f"{query}&_total=accurate" if "?" in query else f"{query}?_total=accurate")


def order(api, query: str) -> list[str]:
    return [e["resource"]["id"] for e in bundle(api, query)["entry"]]


@pytest.fixture
def data(api):
    for patient in ("p1", "p2", "p3"):
        put(api, {"resourceType": "Patient", "id": patient})
    d = {}
    d["bp"] = create(api, bp("p1", 150, 90))  # a panel with components
    d["hr"] = create(api, observation("Patient/p1", HEART_RATE, value=72, unit="/min"))
    d["sys"] = create(api, observation("Patient/p2", SYSTOLIC, value=135, unit="mm[Hg]"))
    d["covid"] = create(
        api,
        observation(
            "Patient/p3",
            "94500-6",
            value={"valueCodeableConcept": codeable(SNOMED, "260373001", "Detected")},
        ),
    )
    # A panel whose diastolic could not be measured: the reason is on the component.
    absent = bp("p2", 140, 0)
    del absent["component"][1]["valueQuantity"]
    absent["component"][1]["dataAbsentReason"] = codeable(UNKNOWN, "error")
    d["bp_absent"] = create(api, absent)
    d["report"] = create(
        api,
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": codeable(LOINC, "55284-4", "Blood pressure systolic and diastolic"),
            "result": [{"reference": f"Observation/{d['bp']}"}],
        },
    )
    return d


def test_the_aliases_are_derived_from_the_registry():
    assert aliases.aliases("Observation") == {
        "combo-code": ("code", "component-code"),
        "combo-code-value-concept": ("code-value-concept", "component-code-value-concept"),
        "combo-code-value-quantity": ("code-value-quantity", "component-code-value-quantity"),
        "combo-data-absent-reason": ("component-data-absent-reason", "data-absent-reason"),
        "combo-value-concept": ("component-value-concept", "value-concept"),
        "combo-value-quantity": ("component-value-quantity", "value-quantity"),
    }
    assert {t for t in RESOURCE_TYPES if aliases.aliases(t)} == {"Observation"}
    assert aliases.stored("Observation", "combo-code:of-type") == (
        "code:of-type",
        "component-code:of-type",
    )
    assert aliases.stored("Observation", "code") == ("code",)


def test_no_combo_rows_are_extracted():
    rows = extract("Observation", bp("p1", 120, 80)).rows
    params = {row[0] for table in rows.values() for row in table}
    assert {"code", "component-code", "component-value-quantity"} <= params
    assert "component-code-value-quantity" in params
    assert not {p for p in params if p.startswith("combo-")}


def test_no_combo_rows_are_stored(api, data):
    for model in INDEX_MODELS:
        assert not model.objects.filter(param__startswith="combo-").exists(), model


def test_combo_code_is_code_or_component_code(api, data):
    assert found(api, f"Observation?combo-code={SYSTOLIC}") == {
        data["bp"],
        data["sys"],
        data["bp_absent"],
    }
    assert found(api, f"Observation?combo-code={LOINC}|{BP_PANEL}") == {
        data["bp"],
        data["bp_absent"],
    }
    assert found(api, f"Observation?combo-code={HEART_RATE}") == {data["hr"]}
    assert found(api, f"Observation?combo-code={DIASTOLIC},{HEART_RATE}") == {
        data["bp"],
        data["bp_absent"],
        data["hr"],
    }
    for code in (SYSTOLIC, DIASTOLIC, BP_PANEL, HEART_RATE, "94500-6"):
        union = found(api, f"Observation?code={code}") | found(
            api, f"Observation?component-code={code}"
        )
        assert found(api, f"Observation?combo-code={code}") == union, code


def test_combo_code_modifiers_and_missing(api, data):
    observations = found(api, "Observation")
    assert found(api, "Observation?combo-code:text=blood%20pressure") == {
        data["bp"],
        data["bp_absent"],
    }
    assert found(api, f"Observation?combo-code:not={SYSTOLIC}") == observations - {
        data["bp"],
        data["sys"],
        data["bp_absent"],
    }
    assert found(api, "Observation?combo-code:missing=false") == observations
    assert found(api, "Observation?combo-code:missing=true") == set()
    assert found(api, "Observation?combo-value-quantity:missing=true") == {data["covid"]}
    assert found(api, "Observation?combo-data-absent-reason:missing=false") == {data["bp_absent"]}


def test_combo_value_quantity(api, data):
    assert found(api, "Observation?combo-value-quantity=gt100") == {
        data["bp"],
        data["sys"],
        data["bp_absent"],
    }
    assert found(api, f"Observation?combo-value-quantity=72|{UCUM}|/min") == {data["hr"]}
    assert found(api, f"Observation?combo-value-quantity=90|{UCUM}|mm[Hg]") == {data["bp"]}
    assert found(api, "Observation?combo-value-quantity=lt80") == {data["hr"]}
    for value in ("gt100", "lt100", "135", "ge140"):
        union = found(api, f"Observation?value-quantity={value}") | found(
            api, f"Observation?component-value-quantity={value}"
        )
        assert found(api, f"Observation?combo-value-quantity={value}") == union, value


def test_combo_code_value_quantity_keeps_both_halves_on_one_element(api, data):
    assert found(api, f"Observation?combo-code-value-quantity={SYSTOLIC}$gt130") == {
        data["bp"],
        data["sys"],
        data["bp_absent"],
    }
    # 90 is the panel's diastolic, not its systolic
    assert found(api, f"Observation?combo-code-value-quantity={SYSTOLIC}$lt100") == set()
    assert found(api, f"Observation?combo-code-value-quantity={DIASTOLIC}$lt100") == {data["bp"]}
    assert found(api, f"Observation?combo-code-value-quantity={HEART_RATE}$72") == {data["hr"]}
    # the panel's own code has no value of its own
    assert found(api, f"Observation?combo-code-value-quantity={BP_PANEL}$gt0") == set()
    assert found(api, "Observation?combo-code-value-concept=94500-6$260373001") == {data["covid"]}
    assert found(api, f"Observation?combo-value-concept={SNOMED}|260373001") == {data["covid"]}
    assert found(api, f"Observation?combo-data-absent-reason={UNKNOWN}|error") == {
        data["bp_absent"]
    }


def test_combo_parameters_scoped_to_a_patient(api, data):
    assert found(api, f"Observation?patient=p1&combo-code={SYSTOLIC}") == {data["bp"]}
    assert found(
        api, f"Observation?subject=Patient/p2&combo-code-value-quantity={SYSTOLIC}$gt0"
    ) == {
        data["sys"],
        data["bp_absent"],
    }
    assert found(api, "Observation?patient=p1&combo-value-quantity=lt100") == {
        data["bp"],
        data["hr"],
    }


def test_combo_parameters_in_a_system_search(api, data):
    body = bundle(api, f"?_type=Observation&combo-code={SYSTOLIC}&_total=accurate")
    assert body["total"] == 3
    assert {e["resource"]["id"] for e in body["entry"]} == {
        data["bp"],
        data["sys"],
        data["bp_absent"],
    }


def test_combo_parameters_through_has_and_chains(api, data):
    assert found(api, f"Patient?_has:Observation:subject:combo-code={SYSTOLIC}") == {"p1", "p2"}
    assert found(api, f"Patient?_has:Observation:subject:combo-code={HEART_RATE}") == {"p1"}
    assert found(
        api, f"Patient?_has:Observation:subject:combo-code-value-quantity={SYSTOLIC}$gt145"
    ) == {"p1"}
    assert found(api, f"DiagnosticReport?result.combo-code={DIASTOLIC}") == {data["report"]}
    assert found(api, f"DiagnosticReport?result.combo-code={HEART_RATE}") == set()


def test_sort_by_combo_parameters(api, data):
    # the least value of each: heart rate 72, the panel's diastolic 90, the lone systolic 135,
    # the other panel's systolic 140; the COVID test has none and comes last
    assert order(api, "Observation?_sort=combo-value-quantity") == [
        data["hr"],
        data["bp"],
        data["sys"],
        data["bp_absent"],
        data["covid"],
    ]
    # descending, by the greatest: 150, 140, 135, 72
    assert order(api, "Observation?_sort=-combo-value-quantity") == [
        data["bp"],
        data["bp_absent"],
        data["sys"],
        data["hr"],
        data["covid"],
    ]
    # the least code: 8462-4 (the panels' diastolic) < 8480-6 < 8867-4 < 94500-6
    by_code = order(api, "Observation?_sort=combo-code,_id")
    assert by_code == [
        *sorted([data["bp"], data["bp_absent"]]),
        data["sys"],
        data["hr"],
        data["covid"],
    ]


def test_rows_left_from_before_are_not_read(api, data):
    """A database indexed before has combo-* rows until ``manage.py reindex``: they are unused,
    so a search neither counts a resource twice nor finds one by a stale row."""
    hr = TokenIndex.objects.filter(param="code", resource__logical_id=data["hr"]).first()
    assert hr is not None
    TokenIndex.objects.create(
        resource_id=hr.resource_id,
        resource_type="Observation",
        param="combo-code",
        patient=hr.patient,
        system=LOINC,
        code="stale-code",
        text=None,
    )
    TokenIndex.objects.create(
        resource_id=hr.resource_id,
        resource_type="Observation",
        param="combo-code",
        patient=hr.patient,
        system=LOINC,
        code=HEART_RATE,
        text=None,
    )
    assert found(api, "Observation?combo-code=stale-code") == set()
    assert found(api, "Observation?patient=p1&combo-code=stale-code") == set()
    assert found(api, f"Observation?combo-code={HEART_RATE}") == {data["hr"]}
