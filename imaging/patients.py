"""Which Patient a clinician means when linking a quarantined study: exactly one, or none.

A clinician types a Patient id (``abc``, ``Patient/abc``), an identifier with its system
(``https://clouddth.example/patient-id|P-100``) or an identifier value alone (``P-100``, any
system). The answer is the one Patient that text names, or a refusal saying why: unknown, or
several Patients fit (then the clinician must be more specific). Nothing is ever guessed
(issue 7: "nothing is attached to a guessed patient"). Identifier search is the FHIR token search
(https://hl7.org/fhir/R4B/search.html#token) of ``fhir_api``.
"""

from __future__ import annotations

from urllib.parse import quote

from fhir_api import json_io
from fhir_api.exceptions import FHIRError
from fhir_api.models import Resource
from fhir_api.search.query import match_ids

MAX_SHOWN = 5


def _escape(value: str) -> str:
    """A token search value with FHIR's escapes (search.html#escaping)."""
    for char in ("\\", "|", ",", "$"):
        value = value.replace(char, "\\" + char)
    return value


class PatientNotChosen(Exception):
    """The text names no Patient, or more than one; ``reason`` says which, for the clinician."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _exists(patient_id: str) -> bool:
    return Resource.objects.filter(
        resource_type="Patient", logical_id=patient_id, deleted=False
    ).exists()


def _by_identifier(token: str) -> list[str]:
    try:
        return match_ids("Patient", f"identifier={token}", limit=MAX_SHOWN + 1)
    except FHIRError as exc:  # a malformed token: say so rather than fail
        raise PatientNotChosen(f"'{token}' is not an identifier: {exc.diagnostics}") from None


def choose_patient(text: str) -> str:
    """The id of the one Patient ``text`` names; ``PatientNotChosen`` otherwise."""
    text = (text or "").strip()
    if not text:
        raise PatientNotChosen("Give a Patient id or identifier")
    if text.startswith("Patient/"):
        patient_id = text.removeprefix("Patient/")
        if _exists(patient_id):
            return patient_id
        raise PatientNotChosen(f"No Patient has the id {patient_id}")
    if "|" in text:
        system, _, value = text.partition("|")
        if not value:
            raise PatientNotChosen(f"'{text}' has no identifier value after its '|'")
        matches = _by_identifier(quote(f"{_escape(system)}|{_escape(value)}", safe=""))
        what = f"identifier {text}"
    else:
        matches = _by_identifier(quote(_escape(text), safe=""))
        if _exists(text) and text not in matches:
            matches = [text, *matches]
        what = f"id or identifier {text}"
    if not matches:
        raise PatientNotChosen(f"No Patient has the {what}")
    if len(matches) > 1:
        shown = ", ".join(f"Patient/{m}" for m in matches[:MAX_SHOWN])
        more = " …" if len(matches) > MAX_SHOWN else ""
        raise PatientNotChosen(
            f"Several Patients have the {what} ({shown}{more}): give the Patient id or the"
            " identifier with its system"
        )
    return matches[0]


def describe_patient(patient_id: str) -> str:
    """ "Ada Jones, born 1944-05-01, P-100 (Patient/abc)": who a study is about to be linked to."""
    content = (
        Resource.objects.filter(resource_type="Patient", logical_id=patient_id, deleted=False)
        .values_list("content", flat=True)
        .first()
    )
    if content is None:
        return f"Patient/{patient_id}"
    data = json_io.loads(content)
    names = data.get("name") or [{}]
    name = (
        names[0].get("text")
        or " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip()
    )
    identifiers = [i.get("value", "") for i in data.get("identifier") or [] if i.get("value")]
    parts = [
        name or "unnamed",
        f"born {data['birthDate']}" if data.get("birthDate") else "",
        ", ".join(identifiers),
    ]
    return f"{', '.join(p for p in parts if p)} (Patient/{patient_id})"
