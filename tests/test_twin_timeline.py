"""The lifecycle timeline: one ordered list built from what is stored about the patient."""

from __future__ import annotations

import json
from datetime import timedelta

from fhir_api import services as store
from twins import services
from twins.models import Alert
from twins.timeline import timeline

# Fixtures are imported from the support module (pytest finds them here), and test arguments
# take their names: hence F401/F811 are off in this file.
# ruff: noqa: F401, F811
from .twin_views_support import (
    T0,
    clinician_user,
    roles,
    send,
    vitals,
    worn,
)


def record(resource_type: str, patient: str, **fields) -> str:
    body = {"resourceType": resource_type, **fields}
    key = "patient" if resource_type in ("EpisodeOfCare",) else "subject"
    body[key] = {"reference": f"Patient/{patient}"}
    return store.create(resource_type, body).resource.logical_id


def test_the_timeline_orders_everything_that_happened(worn, send, clinician_user):
    patient, device = worn("Lifelong", "TL-1")
    record("Condition", patient, code={"text": "Type 2 diabetes"}, onsetDateTime="2015-06-01")
    record(
        "MedicationStatement",
        patient,
        status="active",
        medicationCodeableConcept={"text": "Metformin 500 mg"},
        effectiveDateTime="2015-07-01",
    )
    record(
        "Encounter",
        patient,
        status="finished",
        **{"class": {"code": "AMB", "display": "ambulatory"}},
        period={"start": "2024-02-10T09:00:00Z"},
    )
    record(
        "ImagingStudy",
        patient,
        status="available",
        started="2024-03-01T10:00:00Z",
        description="Chest X-ray",
    )
    record(
        "Flag",
        patient,
        status="active",
        code={"text": "Lives alone"},
        period={"start": "2023-01-01"},
    )
    record(
        "Observation",
        patient,
        status="final",
        code={"text": "not a timeline entry"},
        effectiveDateTime="2024-01-01",
    )
    send(device, vitals(T0))
    send(device, vitals(T0 + timedelta(minutes=5), hr=115, rr=22, spo2=95))
    alert = Alert.objects.get(patient_id=patient, problem="news2")
    services.act_on_alert(alert.pk, "acknowledge", clinician_user, "seen")
    record(
        "ClinicalImpression",
        patient,
        status="completed",
        summary="Likely early infection",
        effectiveDateTime="2026-11-27T09:00:00Z",
    )

    entries = timeline(patient)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    titles = [e.title for e in entries]
    kinds = {e.kind for e in entries}
    assert {
        "condition",
        "medication",
        "encounter",
        "imaging",
        "device",
        "lifecycle",
        "alert",
        "alert-action",
        "assessment",
        "risk",
        "enrolment",
    } <= kinds
    assert titles[0] == "Condition: Type 2 diabetes"
    assert titles[1] == "Medication taking: Metformin 500 mg"
    assert "Flag: Lives alone" in titles  # another system's Flag; the twin's are its alerts
    assert not any("not a timeline entry" in t for t in titles)
    assert sum(1 for e in entries if e.reference.startswith("Flag/")) == 2  # EHR flag + alert
    acknowledged = next(e for e in entries if e.kind == "alert-action")
    assert acknowledged.by == "dr.grey" and acknowledged.detail == "seen"
    assert acknowledged.reference.startswith("Provenance/")
    stage = next(e for e in entries if e.kind == "lifecycle")
    assert stage.title == "Stage: monitored" and stage.reference.startswith("EpisodeOfCare/")
    # The EpisodeOfCare mirroring the stage is shown once, as the stage change.
    assert not any(e.title.startswith("Episode of care") for e in entries)
    assert [e.title for e in timeline(patient, newest_first=True)][-1] == titles[0]
    json.dumps([e.as_dict() for e in entries])  # ready for $twin
