"""What the clinicians' views show of a patient's identity, read from the stored Patient.

One query for any number of patients (the ward), the JSON of each Patient parsed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_api import json_io
from fhir_api.models import Resource


@dataclass(frozen=True)
class PatientFacts:
    patient_id: str
    name: str
    gender: str = ""
    birth_date: str = ""
    age: int | None = None
    identifier: str = ""


def display_name(data: dict[str, Any]) -> str:
    """HumanName as people read it: its text, else given names and family name."""
    names = data.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not official:
        return ""
    if official.get("text"):
        return official["text"]
    parts = [*official.get("prefix", []), *official.get("given", []), official.get("family", "")]
    return " ".join(p for p in parts if p).strip()


def age_on(birth_date: str, today: date) -> int | None:
    """Whole years from a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) to ``today``."""
    try:
        parts = [int(p) for p in birth_date.split("-")]
    except ValueError:
        return None
    if not parts:
        return None
    year, month, day = [*parts, 1, 1][:3]
    return today.year - year - ((today.month, today.day) < (month, day))


def facts_of(patient_id: str, data: dict[str, Any], today: date) -> PatientFacts:
    birth = data.get("birthDate") or ""
    identifiers = data.get("identifier") or []
    return PatientFacts(
        patient_id=patient_id,
        name=display_name(data) or f"Patient/{patient_id}",
        gender=data.get("gender") or "",
        birth_date=birth,
        age=age_on(birth, today) if birth else None,
        identifier=(identifiers[0].get("value") or "") if identifiers else "",
    )


def patient_facts(patient_ids: list[str], today: date) -> dict[str, PatientFacts]:
    """Facts of each known, not deleted patient of ``patient_ids``; unknown ids are left out."""
    rows = Resource.objects.filter(
        resource_type="Patient", logical_id__in=patient_ids, deleted=False
    ).values_list("logical_id", "content")
    return {pid: facts_of(pid, json_io.loads(content), today) for pid, content in rows}
