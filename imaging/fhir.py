"""A DICOM study as a FHIR R4B ImagingStudy (https://hl7.org/fhir/R4B/imagingstudy.html).

The resource is built from the database rows of the study and its instances, so it always says
what is stored: one ImagingStudy per StudyInstanceUID, rebuilt and written again (a new version,
``fhir_api.services.update``) whenever an instance arrives. The mapping follows the DICOM-to-FHIR
table of the ImagingStudy page (imagingstudy-mappings.html#dicom) and DICOM PS3.18 F.2:

- ``identifier``: the StudyInstanceUID as ``urn:dicom:uid`` / ``urn:oid:<uid>``
  (imagingstudy.html#notes "Identifiers");
- ``modality`` and ``series.modality``: codes of the DICOM code system
  ``http://dicom.nema.org/resources/ontology/DCM`` (CID 29, acquisition modality);
- ``series.bodySite``: BodyPartExamined mapped to SNOMED CT as DICOM PS3.16 Annex L (CID 4031)
  does where this table knows the term, else a Coding with the DICOM term as its display;
- ``series.instance.sopClass``: ``urn:ietf:rfc:3986`` / ``urn:oid:<SOP Class UID>``.

A series whose files carry no Modality (Type 1 in DICOM, but absent in some files) is described as
``OT`` (Other), because ``series.modality`` is required in R4B.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import DicomInstance, DicomStudy

DICOM_UID_SYSTEM = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
URI_SYSTEM = "urn:ietf:rfc:3986"

# DICOM CID 29 / CID 33 modality codes with their DCM code meanings.
MODALITY_NAMES = {
    "AR": "Autorefraction",
    "BMD": "Bone Mineral Densitometry",
    "CR": "Computed Radiography",
    "CT": "Computed Tomography",
    "DG": "Diaphanography",
    "DX": "Digital Radiography",
    "ECG": "Electrocardiography",
    "EPS": "Cardiac Electrophysiology",
    "ES": "Endoscopy",
    "GM": "General Microscopy",
    "HD": "Hemodynamic Waveform",
    "IO": "Intra-oral Radiography",
    "IVUS": "Intravascular Ultrasound",
    "MG": "Mammography",
    "MR": "Magnetic Resonance",
    "NM": "Nuclear Medicine",
    "OCT": "Optical Coherence Tomography",
    "OP": "Ophthalmic Photography",
    "OT": "Other",
    "PT": "Positron emission tomography",
    "PX": "Panoramic X-Ray",
    "RF": "Radio Fluoroscopy",
    "RTDOSE": "Radiotherapy Dose",
    "RTIMAGE": "RT Image",
    "RTPLAN": "Radiotherapy Plan",
    "RTSTRUCT": "Radiotherapy Structure Set",
    "SEG": "Segmentation",
    "SM": "Slide Microscopy",
    "SR": "SR Document",
    "US": "Ultrasound",
    "XA": "X-Ray Angiography",
    "XC": "External-camera Photography",
}

# BodyPartExamined (0018,0015) defined terms to SNOMED CT, from DICOM PS3.16 Annex L (CID 4031).
BODY_PARTS = {
    "ABDOMEN": ("818981001", "Abdomen"),
    "ABDOMENPELVIS": ("416949008", "Abdomen and pelvis"),
    "BRAIN": ("12738006", "Brain"),
    "BREAST": ("76752008", "Breast"),
    "CHEST": ("43799004", "Chest"),
    "CHESTABDOMEN": ("416550000", "Chest and abdomen"),
    "CSPINE": ("122494005", "Cervical spine"),
    "FOOT": ("56459004", "Foot"),
    "HAND": ("85562004", "Hand"),
    "HEAD": ("69536005", "Head"),
    "HEART": ("80891009", "Heart"),
    "KNEE": ("72696002", "Knee"),
    "LSPINE": ("122496007", "Lumbar spine"),
    "NECK": ("45048000", "Neck"),
    "PELVIS": ("816092008", "Pelvis"),
    "SHOULDER": ("16982005", "Shoulder"),
    "SKULL": ("89546000", "Skull"),
    "TSPINE": ("122495006", "Thoracic spine"),
    "WHOLEBODY": ("38266002", "Entire body"),
}


def modality_coding(code: str) -> dict[str, str]:
    code = code or "OT"
    coding = {"system": DCM, "code": code}
    if code in MODALITY_NAMES:
        coding["display"] = MODALITY_NAMES[code]
    return coding


def body_site_coding(body_part: str) -> dict[str, str] | None:
    """A Coding for BodyPartExamined: SNOMED CT where mapped, else the DICOM term as display."""
    term = body_part.strip()
    if not term:
        return None
    key = term.upper().replace(" ", "").replace("_", "")
    if key in BODY_PARTS:
        code, display = BODY_PARTS[key]
        return {"system": SNOMED, "code": code, "display": display}
    return {"display": term}


def oid(uid: str) -> str:
    return f"urn:oid:{uid}"


def format_started(started: datetime) -> str:
    """An instant in UTC, as the database gives it back, so every version writes it alike."""
    return started.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _sort_key(number: int | None, uid: str) -> tuple[int, int, str]:
    return (0 if number is not None else 1, number or 0, uid)


def imaging_study(
    study: DicomStudy, instances: list[DicomInstance], logical_id: str
) -> dict[str, Any]:
    """The ImagingStudy describing ``study`` and its stored ``instances`` (its subject set)."""
    series: OrderedDict[str, list[DicomInstance]] = OrderedDict()
    for instance in sorted(instances, key=lambda i: _sort_key(i.series_number, i.series_uid)):
        series.setdefault(instance.series_uid, []).append(instance)
    modalities: list[str] = []
    series_json = []
    for series_uid, members in series.items():
        first = members[0]
        modality = next((m.modality for m in members if m.modality), "") or "OT"
        if modality not in modalities:
            modalities.append(modality)
        entry: dict[str, Any] = {"uid": series_uid}
        if first.series_number is not None and first.series_number >= 0:
            entry["number"] = first.series_number
        entry["modality"] = modality_coding(modality)
        description = next((m.series_description for m in members if m.series_description), "")
        if description:
            entry["description"] = description
        entry["numberOfInstances"] = len(members)
        site = body_site_coding(next((m.body_part for m in members if m.body_part), ""))
        if site:
            entry["bodySite"] = site
        entry["instance"] = [
            {
                "uid": member.sop_instance_uid,
                "sopClass": {"system": URI_SYSTEM, "code": oid(member.sop_class_uid)},
                **(
                    {"number": member.instance_number}
                    if member.instance_number is not None and member.instance_number >= 0
                    else {}
                ),
            }
            for member in sorted(
                members, key=lambda m: _sort_key(m.instance_number, m.sop_instance_uid)
            )
        ]
        series_json.append(entry)
    body: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": logical_id,
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": oid(study.study_uid)}],
        "status": "available",
        "modality": [modality_coding(code) for code in modalities],
        "subject": {"reference": f"Patient/{study.patient_id}"},
    }
    if study.started is not None:
        body["started"] = format_started(study.started)
    body["numberOfSeries"] = len(series_json)
    body["numberOfInstances"] = len(instances)
    if study.description:
        body["description"] = study.description
    body["series"] = series_json
    return body
