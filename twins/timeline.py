"""The lifecycle timeline: one ordered list of everything that happened to a patient.

Built from what is stored, never kept separately: the Patient's first version (enrolment),
lifecycle stage changes (``LifecycleEvent``, mirrored as EpisodeOfCare/Encounter), device
pairings (``devices.Pairing``), the alerts and every clinician's action on them, and the FHIR
resources in the patient's record: conditions, medications, encounters, clinical impressions,
imaging studies, risk assessments and forecasts, flags from other systems, and more.

``timeline(patient_id)`` gives ``Entry`` objects oldest first; ``Entry.as_dict`` is JSON-ready
(for the patient page and the ``$twin`` operation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from devices.models import Pairing
from fhir_api import json_io
from fhir_api.models import ReferenceIndex, Resource, ResourceVersion
from fhir_api.search.dates import format_instant
from imaging.twin import timeline_previews

from .display import SEVERITY, instant
from .fhir import TWIN_TAG
from .models import STAGES, Alert, AlertAction, LifecycleEvent

# Resource types of the patient's record that belong on the timeline (Observations do not:
# the vitals have their charts, and NEWS2 its own; the alerts stand for the twin's Flags).
TIMELINE_TYPES = (
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "Encounter",
    "EpisodeOfCare",
    "ClinicalImpression",
    "ImagingStudy",
    "RiskAssessment",
    "Procedure",
    "DiagnosticReport",
    "Immunization",
    "AllergyIntolerance",
    "CarePlan",
    "Flag",
)
# Where each type says when it happened, first found wins; meta.lastUpdated otherwise.
WHEN = {
    "Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
    "MedicationRequest": ("authoredOn",),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
    "Encounter": ("period.start",),
    "EpisodeOfCare": ("period.start",),
    "ClinicalImpression": ("effectiveDateTime", "effectivePeriod.start", "date"),
    "ImagingStudy": ("started",),
    "RiskAssessment": ("occurrenceDateTime", "occurrencePeriod.start"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "Immunization": ("occurrenceDateTime",),
    "AllergyIntolerance": ("onsetDateTime", "recordedDate"),
    "CarePlan": ("period.start", "created"),
    "Flag": ("period.start",),
}
KINDS = {
    "Condition": "condition",
    "MedicationStatement": "medication",
    "MedicationRequest": "medication",
    "MedicationAdministration": "medication",
    "Encounter": "encounter",
    "EpisodeOfCare": "lifecycle",
    "ClinicalImpression": "assessment",
    "ImagingStudy": "imaging",
    "RiskAssessment": "risk",
    "Procedure": "procedure",
    "DiagnosticReport": "report",
    "Immunization": "immunization",
    "AllergyIntolerance": "allergy",
    "CarePlan": "plan",
    "Flag": "alert",
}
STAGE_LABELS = dict(STAGES)
ACTION_VERBS = {
    "acknowledge": "acknowledged",
    "assign": "assigned",
    "escalate": "escalated",
    "resolve": "resolved",
    "comment": "commented on",
}


@dataclass(frozen=True)
class Entry:
    """One thing that happened: when, what kind, a one-line title, details, who, and the
    FHIR resource (``Type/id``) that records it, if any."""

    at: datetime
    kind: str
    title: str
    detail: str = ""
    by: str = ""
    reference: str = ""
    image: str = ""  # a preview to show beside it (an imaging study's first image)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": format_instant(self.at)}


def _path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def concept_text(concept: Any) -> str:
    """A CodeableConcept as a person reads it: its text, else its first display or code."""
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return concept["text"]
    for coding in concept.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return coding.get("display") or coding["code"]
    return ""


def _status(concept: Any) -> str:
    return concept_text(concept)


def _describe(resource_type: str, data: dict[str, Any]) -> tuple[str, str, str]:
    """(title, detail, by) of a stored resource."""
    by = _path(data, "recorder.display") or _path(data, "assessor.display") or ""
    if resource_type == "Condition":
        statuses = [
            s
            for s in (_status(data.get("clinicalStatus")), _status(data.get("verificationStatus")))
            if s
        ]
        return f"Condition: {concept_text(data.get('code')) or 'unnamed'}", ", ".join(statuses), by
    if resource_type.startswith("Medication"):
        medicine = concept_text(data.get("medicationCodeableConcept")) or _path(
            data, "medicationReference.display"
        )
        dosage = data.get("dosage") or data.get("dosageInstruction") or []
        detail = (dosage[0].get("text", "") if isinstance(dosage, list) and dosage else "") or (
            data.get("status") or ""
        )
        verb = {"MedicationRequest": "prescribed", "MedicationAdministration": "given"}.get(
            resource_type, "taking"
        )
        return f"Medication {verb}: {medicine or 'unnamed'}", detail, by
    if resource_type == "Encounter":
        what = concept_text((data.get("type") or [{}])[0]) or _path(data, "class.display") or ""
        return f"Encounter: {what or 'visit'}", data.get("status", ""), by
    if resource_type == "EpisodeOfCare":
        what = concept_text((data.get("type") or [{}])[0]) or "episode of care"
        return f"Episode of care: {what}", data.get("status", ""), by
    if resource_type == "ClinicalImpression":
        findings = [
            concept_text(f.get("itemCodeableConcept")) or _path(f, "itemReference.display") or ""
            for f in data.get("finding") or []
        ]
        detail = "; ".join(x for x in [data.get("summary", ""), *findings] if x)
        return "Clinical assessment", detail, by
    if resource_type == "ImagingStudy":
        modalities = ", ".join(m.get("code", "") for m in data.get("modality") or [])
        return f"Imaging: {data.get('description') or modalities or 'study'}", modalities, by
    if resource_type == "RiskAssessment":
        method = concept_text(data.get("method")) or "risk assessment"
        predictions = []
        for p in data.get("prediction") or []:
            outcome = concept_text(p.get("outcome"))
            risk = concept_text(p.get("qualitativeRisk"))
            if p.get("probabilityDecimal") is not None:
                risk = risk or f"{float(p['probabilityDecimal']):.0%}"
            predictions.append(" ".join(x for x in [outcome, risk and f"({risk})"] if x))
        detail = "; ".join(predictions)
        rationale = next(
            (p.get("rationale") for p in data.get("prediction") or [] if p.get("rationale")), ""
        )
        return f"Risk ({method})", rationale or detail, by
    title = concept_text(data.get("code")) or concept_text(data.get("vaccineCode"))
    return f"{resource_type}: {title or data.get('status', '')}", data.get("status", ""), by


def _when(resource_type: str, data: dict[str, Any]) -> datetime | None:
    for path in WHEN.get(resource_type, ()):
        value = _path(data, path)
        if isinstance(value, str):
            try:
                return instant(value)
            except Exception:  # a malformed date must not hide the rest of the record
                continue
    return instant(_path(data, "meta.lastUpdated"))


def _from_twin(data: dict[str, Any]) -> bool:
    return any(tag.get("code") == TWIN_TAG["code"] for tag in _path(data, "meta.tag") or [])


def _record_entries(patient_id: str, skip: set[str], images: dict[str, str]) -> list[Entry]:
    pks = (
        ReferenceIndex.objects.filter(
            target_type="Patient", target_id=patient_id, resource_type__in=TIMELINE_TYPES
        )
        .values("resource_id")
        .distinct()
    )
    entries = []
    for resource_type, logical_id, content in Resource.objects.filter(
        pk__in=pks, deleted=False
    ).values_list("resource_type", "logical_id", "content"):
        reference = f"{resource_type}/{logical_id}"
        if reference in skip:
            continue
        data = json_io.loads(content)
        if resource_type == "Flag" and _from_twin(data):
            continue  # the twin's Flags are its alerts, shown from Alert with their actions
        at = _when(resource_type, data)
        if at is None:
            continue
        title, detail, by = _describe(resource_type, data)
        entries.append(
            Entry(at, KINDS[resource_type], title, detail, by, reference, images.get(reference, ""))
        )
    return entries


def _enrolment(patient_id: str) -> list[Entry]:
    first = (
        ResourceVersion.objects.filter(
            resource__resource_type="Patient", resource__logical_id=patient_id, version_id=1
        )
        .values_list("last_updated", flat=True)
        .first()
    )
    if first is None:
        return []
    return [
        Entry(
            first, "enrolment", "Enrolled: patient record created", "", "", f"Patient/{patient_id}"
        )
    ]


def _lifecycle_entries(patient_id: str) -> list[Entry]:
    return [
        Entry(
            event.at,
            "lifecycle",
            f"Stage: {STAGE_LABELS.get(event.to_stage, event.to_stage)}",
            (
                f"from {STAGE_LABELS.get(event.from_stage, event.from_stage)}; "
                if event.from_stage
                else ""
            )
            + event.why,
            event.by,
            event.fhir_reference,
        )
        for event in LifecycleEvent.objects.filter(patient_id=patient_id)
    ]


def _device_entries(patient_id: str) -> list[Entry]:
    entries = []
    for pairing in Pairing.objects.filter(patient_id=patient_id).select_related("device"):
        device = pairing.device
        name = device.model_name or device.kind
        reference = f"Device/{device.fhir_id}"
        entries.append(
            Entry(
                pairing.start,
                "device",
                f"Device paired: {device.identifier}",
                " ".join(x for x in [name, pairing.reason] if x),
                pairing.created_by,
                reference,
            )
        )
        if pairing.end:
            entries.append(
                Entry(
                    pairing.end,
                    "device",
                    f"Device unpaired: {device.identifier}",
                    "",
                    "",
                    reference,
                )
            )
    return entries


def _alert_entries(patient_id: str) -> list[Entry]:
    entries = []
    alerts = Alert.objects.filter(patient_id=patient_id)
    for alert in alerts:
        flag = f"Flag/{alert.flag_id}" if alert.flag_id else ""
        entries.append(
            Entry(
                alert.opened,
                "alert",
                f"Alert ({SEVERITY[alert.severity]}): {alert.summary}",
                "",
                "twin",
                flag,
            )
        )
        if alert.resolved:
            entries.append(
                Entry(alert.resolved, "alert", f"Alert resolved: {alert.summary}", "", "", flag)
            )
    for action in AlertAction.objects.filter(alert__in=alerts).select_related("alert", "by"):
        verb = ACTION_VERBS.get(action.action, action.action)
        entries.append(
            Entry(
                action.at,
                "alert-action",
                f"Alert {verb}: {action.alert.summary}",
                action.comment,
                action.by.get_username(),
                action.fhir_reference,
            )
        )
    return entries


def timeline(patient_id: str, *, newest_first: bool = False) -> list[Entry]:
    """Everything that happened to the patient, ordered by time (oldest first by default)."""
    lifecycle = _lifecycle_entries(patient_id)
    # The EpisodeOfCare and Encounters that mirror stage changes are shown as those changes.
    mirrored = {e.reference for e in lifecycle if e.reference}
    entries = (
        _enrolment(patient_id)
        + lifecycle
        + _device_entries(patient_id)
        + _alert_entries(patient_id)
        + _record_entries(patient_id, mirrored, timeline_previews(patient_id))
    )
    entries.sort(key=lambda e: (e.at, e.kind, e.title), reverse=newest_first)
    return entries
