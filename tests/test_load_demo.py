"""``manage.py load_demo``: the demo data set loads through the FHIR write path, once."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from fhir_api.management.commands.load_demo import PATIENT_ID_SYSTEM, PATIENTS
from fhir_api.models import Resource, ResourceVersion


def load() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


DEMO_TYPES = ("Organization", "Practitioner", "Patient", "Condition", "Observation")


def counts() -> dict[str, int]:
    return {t: Resource.objects.filter(resource_type=t).count() for t in DEMO_TYPES}


def test_load_demo_is_idempotent(db):
    first = load()
    after_first = counts()
    assert after_first["Organization"] == 1
    assert after_first["Practitioner"] == 1
    assert after_first["Patient"] == len(PATIENTS) >= 6
    assert after_first["Condition"] >= 3
    assert after_first["Observation"] >= 6
    assert "0 already there" in first

    second = load()
    assert counts() == after_first
    assert " 0 resource(s) created" in second
    # Nothing was written the second time: every resource is still at its first version.
    versions = ResourceVersion.objects.filter(resource_type__in=DEMO_TYPES)
    assert versions.count() == sum(after_first.values())
    demo_rows = Resource.objects.filter(resource_type__in=DEMO_TYPES)
    assert set(demo_rows.values_list("version_id", flat=True)) == {1}


def test_demo_patients_are_searchable_by_identifier(api):
    load()
    for key, family, _given, _gender, born, *_rest in PATIENTS:
        r = api.fhir("GET", f"/fhir/Patient?identifier={PATIENT_ID_SYSTEM}|{key}")
        assert r.status_code == 200, r.content
        entries = r.json_body.get("entry", [])
        assert len(entries) == 1, f"{key}: {len(entries)} matches"
        patient = entries[0]["resource"]
        assert patient["name"][0]["family"] == family
        assert "1930" <= patient["birthDate"][:4] <= "1955"
        assert patient["birthDate"] == born


def test_demo_vital_signs_are_coded(api):
    """Vital signs carry the vital-signs category, a LOINC code and UCUM units, per patient."""
    load()
    patient_id = api.fhir(
        "GET", f"/fhir/Patient?identifier={PATIENT_ID_SYSTEM}|{PATIENTS[0][0]}"
    ).json_body["entry"][0]["resource"]["id"]
    observations = [
        api.fhir("GET", f"/fhir/Observation/{row.logical_id}").json_body
        for row in Resource.objects.filter(resource_type="Observation")
    ]
    mine = [o for o in observations if o["subject"]["reference"] == f"Patient/{patient_id}"]
    assert len(mine) >= 5
    for obs in mine:
        assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
        assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
        quantities = [obs["valueQuantity"]] if "valueQuantity" in obs else []
        quantities += [c["valueQuantity"] for c in obs.get("component", [])]
        assert quantities
        for q in quantities:
            assert q["system"] == "http://unitsofmeasure.org"
            assert q["code"]
    codes = {o["code"]["coding"][0]["code"] for o in mine}
    assert {"8867-4", "9279-1", "2708-6", "8310-5", "85354-9"} <= codes
