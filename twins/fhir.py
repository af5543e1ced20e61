"""The FHIR resources a twin writes: NEWS2 score Observations, alert Flags, RiskAssessments,
Provenance for clinicians' actions, EpisodeOfCare for the lifecycle (clinical-reference.md,
"How results are written in FHIR"). All go through the store's write path like any client's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_api import services as store
from fhir_api.search.dates import format_instant

from . import news2
from .rules import Finding

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
FLAG_PRIORITY_URL = "http://hl7.org/fhir/StructureDefinition/flag-priority"
FLAG_PRIORITY = "http://hl7.org/fhir/flag-priority-code"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
ALERT_SYSTEM = "https://clouddth.example/fhir/alert"
TWIN_TAG = {
    "system": "https://clouddth.example/fhir/CodeSystem/source",
    "code": "twin",
    "display": "Written by the patient's digital twin",
}
PRIORITY = {1: ("PL", "Low priority"), 2: ("PM", "Medium priority"), 3: ("PH", "High priority")}
COMPONENT_CODES = {
    "respiratory_rate": ("9279-1", "Respiratory rate"),
    "oxygen_saturation": ("2708-6", "Oxygen saturation"),
    "supplemental_oxygen": ("3151-8", "Inhaled oxygen flow rate"),
    "systolic": ("8480-6", "Systolic blood pressure"),
    "pulse": ("8867-4", "Heart rate"),
    "consciousness": ("80288-4", "Level of consciousness"),
    "temperature": ("8310-5", "Body temperature"),
}


def news2_observation(
    patient_id: str, score: news2.Score, at: datetime, derived_from: list[str]
) -> str:
    components = []
    for name, points in score.components.items():
        code, display = COMPONENT_CODES[name]
        component: dict[str, Any] = {
            "code": {
                "coding": [{"system": "http://loinc.org", "code": code, "display": display}],
                "text": name,
            }
        }
        if name in score.missing:
            component["dataAbsentReason"] = {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": "unknown",
                        "display": "Unknown",
                    }
                ]
            }
        else:
            component["valueInteger"] = points
        components.append(component)
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"tag": [TWIN_TAG]},
        "status": "preliminary" if score.partial else "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": "survey", "display": "Survey"}]}],
        "code": {
            "coding": [
                {
                    "system": news2.SNOMED,
                    "code": news2.NEWS2_CODE[0],
                    "display": news2.NEWS2_CODE[1],
                }
            ],
            "text": "NEWS2",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": format_instant(at),
        "valueInteger": score.total,
        "interpretation": [
            {
                "text": f"{score.band} ({score.colour}): {score.response}; monitoring {score.monitoring}"
            }
        ],
        "derivedFrom": [{"reference": f"Observation/{i}"} for i in derived_from],
        "component": components,
    }
    notes = []
    if score.missing:
        notes.append(
            "Partial score: no current value for " + ", ".join(score.missing) + " (scored 0)."
        )
    if score.assumed:
        notes.append(
            "Assumed (not recorded by a clinician): "
            + ", ".join(
                {"supplemental_oxygen": "breathing air", "consciousness": "alert"}[a]
                for a in score.assumed
            )
            + "."
        )
    if notes:
        data["note"] = [{"text": " ".join(notes)}]
    return store.create("Observation", data).resource.logical_id


def flag(
    patient_id: str,
    alert_pk: int,
    finding: Finding,
    *,
    start: datetime,
    end: datetime | None = None,
    flag_id: str | None = None,
) -> str:
    system, code, display = finding.coding
    data: dict[str, Any] = {
        "resourceType": "Flag",
        "meta": {"tag": [TWIN_TAG]},
        "extension": [
            {
                "url": FLAG_PRIORITY_URL,
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": FLAG_PRIORITY,
                            "code": PRIORITY[finding.severity][0],
                            "display": PRIORITY[finding.severity][1],
                        }
                    ]
                },
            }
        ],
        "identifier": [{"system": ALERT_SYSTEM, "value": str(alert_pk)}],
        "status": "inactive" if end else "active",
        "category": [
            {"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}
        ],
        "code": {
            "coding": [{"system": system, "code": code, "display": display}],
            "text": finding.summary,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": format_instant(start), **({"end": format_instant(end)} if end else {})},
    }
    if flag_id:
        data["id"] = flag_id
        return store.update("Flag", flag_id, data).resource.logical_id
    return store.create("Flag", data).resource.logical_id


def risk_assessment(patient_id: str, score: news2.Score, at: datetime, basis: str) -> str:
    qualitative = {
        "low": ("low", "Low likelihood"),
        "low-medium": ("moderate", "Moderate likelihood"),
        "medium": ("moderate", "Moderate likelihood"),
        "high": ("high", "High likelihood"),
    }[score.band]
    data = {
        "resourceType": "RiskAssessment",
        "meta": {"tag": [TWIN_TAG]},
        "status": "preliminary" if score.partial else "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": format_instant(at),
        "method": {
            "coding": [
                {
                    "system": news2.SNOMED,
                    "code": news2.NEWS2_CODE[0],
                    "display": news2.NEWS2_CODE[1],
                }
            ],
            "text": "NEWS2",
        },
        "basis": [{"reference": f"Observation/{basis}"}],
        "prediction": [
            {
                "outcome": {"text": "Clinical deterioration"},
                "qualitativeRisk": {
                    "coding": [
                        {
                            "system": RISK_PROBABILITY,
                            "code": qualitative[0],
                            "display": qualitative[1],
                        }
                    ]
                },
                "rationale": f"NEWS2 {score.total}: {score.band} risk, {score.response}",
            }
        ],
    }
    return store.create("RiskAssessment", data).resource.logical_id


def provenance(
    target: str, activity: str, practitioner: str, at: datetime, comment: str = ""
) -> str:
    data: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": format_instant(at),
        "activity": {
            "coding": [
                {
                    "system": "https://clouddth.example/fhir/CodeSystem/alert-action",
                    "code": activity,
                    "display": activity,
                }
            ],
            "text": activity,
        },
        "agent": [{"who": {"reference": f"Practitioner/{practitioner}"}}],
    }
    if comment:
        data["reason"] = [{"text": comment}]
    return store.create("Provenance", data).resource.logical_id


def practitioner_for(username: str, full_name: str) -> str:
    """The Practitioner that stands for a staff user in FHIR (made on first use)."""
    data = {
        "resourceType": "Practitioner",
        "identifier": [{"system": "https://clouddth.example/fhir/staff-user", "value": username}],
        "name": [{"text": full_name or username}],
    }
    query = f"identifier=https://clouddth.example/fhir/staff-user|{username}"
    return store.create("Practitioner", data, if_none_exist=query).resource.logical_id
