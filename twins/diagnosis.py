"""A clinician's diagnosis, written to the patient's record through the FHIR write path.

Two forms of it (clinical-reference.md, "How results are written in FHIR"):

- ``record_impression``: a ``ClinicalImpression`` (hl7.org/fhir/R4B/clinicalimpression.html),
  status completed, the clinician's summary and finding (free text or a SNOMED CT code), the
  clinician as assessor (their ``Practitioner``);
- ``record_condition``: a ``Condition`` (hl7.org/fhir/R4B/condition.html) on the problem list,
  clinical status active, verification confirmed or provisional, with its onset.

Both are plain ``fhir_api.services.create`` writes, so they are validated, versioned, indexed
and searchable by patient like any client's, and they appear on the lifecycle timeline.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.utils import timezone

from fhir_api import services as store
from fhir_api.exceptions import BadRequest
from fhir_api.search.dates import format_instant

from . import fhir
from .services import twin_for

SNOMED = "http://snomed.info/sct"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
VERIFICATIONS = {"confirmed": "Confirmed", "provisional": "Provisional"}
# SNOMED CT identifiers are 6 to 18 digits (SNOMED CT Technical Implementation Guide, 6.1).
SNOMED_ID = re.compile(r"^[1-9][0-9]{5,17}$")


def concept(text: str, snomed_code: str = "") -> dict[str, Any]:
    """A CodeableConcept of free text, with a SNOMED CT coding when a code is given."""
    text, snomed_code = text.strip(), snomed_code.strip()
    if not text and not snomed_code:
        raise BadRequest("Give a text or a SNOMED CT code")
    out: dict[str, Any] = {}
    if snomed_code:
        if not SNOMED_ID.match(snomed_code):
            raise BadRequest(f"'{snomed_code}' is not a SNOMED CT code (6 to 18 digits)")
        coding: dict[str, str] = {"system": SNOMED, "code": snomed_code}
        if text:
            coding["display"] = text
        out["coding"] = [coding]
    if text:
        out["text"] = text
    return out


def _assessor(user: Any) -> dict[str, str]:
    practitioner = fhir.practitioner_for(user.get_username(), user.get_full_name())
    return {
        "reference": f"Practitioner/{practitioner}",
        "display": user.get_full_name() or user.get_username(),
    }


def record_impression(
    patient_id: str, user: Any, *, summary: str, finding: str = "", finding_code: str = ""
) -> str:
    """Store a completed ClinicalImpression by ``user``; its id."""
    twin_for(patient_id)  # the patient must exist
    if not summary.strip():
        raise BadRequest("A clinical impression needs a summary")
    now = format_instant(timezone.now())
    data: dict[str, Any] = {
        "resourceType": "ClinicalImpression",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": now,
        "date": now,
        "assessor": _assessor(user),
        "summary": summary.strip(),
    }
    if finding.strip() or finding_code.strip():
        data["finding"] = [{"itemCodeableConcept": concept(finding, finding_code)}]
    return store.create("ClinicalImpression", data).resource.logical_id


def record_condition(
    patient_id: str,
    user: Any,
    *,
    text: str = "",
    code: str = "",
    verification: str = "confirmed",
    onset: date | None = None,
    note: str = "",
) -> str:
    """Store an active Condition (problem-list item) recorded by ``user``; its id."""
    twin_for(patient_id)
    if verification not in VERIFICATIONS:
        raise BadRequest("verification is confirmed or provisional")
    code_concept = concept(text, code)
    who = _assessor(user)
    data: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [{"system": CLINICAL_STATUS, "code": "active", "display": "Active"}]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": VERIFICATION_STATUS,
                    "code": verification,
                    "display": VERIFICATIONS[verification],
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CONDITION_CATEGORY,
                        "code": "problem-list-item",
                        "display": "Problem List Item",
                    }
                ]
            }
        ],
        "code": code_concept,
        "subject": {"reference": f"Patient/{patient_id}"},
        "recordedDate": format_instant(timezone.now()),
        "recorder": who,
        "asserter": who,
    }
    if onset is not None:
        data["onsetDateTime"] = onset.isoformat()
    if note.strip():
        data["note"] = [{"text": note.strip()}]
    return store.create("Condition", data).resource.logical_id
