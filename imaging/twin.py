"""What the patient's twin shows of imaging: the linked studies with a preview of each.

For the patient twin page (a card of studies, newest first) and its lifecycle timeline (the
study's FHIR ImagingStudy entry gets the preview). Only studies linked to this patient are
shown: a quarantined study (no patient yet) belongs to nobody and never appears on a patient
(issue 7); it has no ImagingStudy either (https://hl7.org/fhir/R4B/imagingstudy.html requires a
subject). Previews are the WADO-RS rendered resource (``imaging.rendered``), drawn once per file.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.urls import reverse

from .models import DicomInstance, DicomStudy
from .rendered import preview_url

THUMBNAIL = 160
TIMELINE_THUMBNAIL = 96


def _studies(patient_id: str):
    if not patient_id:
        return DicomStudy.objects.none()
    return (
        DicomStudy.objects.filter(patient_id=patient_id)
        .order_by("-started", "-received")
        .prefetch_related(
            Prefetch(
                "instances",
                queryset=DicomInstance.objects.order_by(
                    "series_number", "instance_number", "pk"
                ).only(
                    "id",
                    "study_id",
                    "sop_instance_uid",
                    "series_uid",
                    "modality",
                    "preview",
                    "preview_note",
                ),
                to_attr="ordered_instances",
            )
        )
    )


def _shown(study: DicomStudy) -> DicomInstance | None:
    drawable = [i for i in study.ordered_instances if i.preview == DicomInstance.PREVIEW_OK]
    return (drawable or study.ordered_instances or [None])[0]


def patient_studies(patient_id: str, *, size: int = THUMBNAIL) -> list[dict[str, Any]]:
    """The patient's studies, newest first, each with its modalities and a preview (or why not)."""
    out = []
    for study in _studies(patient_id):
        shown = _shown(study)
        drawable = shown is not None and shown.preview == DicomInstance.PREVIEW_OK
        out.append(
            {
                "study_uid": study.study_uid,
                "started": study.started,
                "description": study.description,
                "modalities": ", ".join(
                    dict.fromkeys(i.modality or "?" for i in study.ordered_instances)
                ),
                "instances": len(study.ordered_instances),
                "series": len({i.series_uid for i in study.ordered_instances}),
                "preview": preview_url(shown, size) if drawable else "",
                "preview_note": "" if drawable or shown is None else shown.preview_note,
                "admin_url": reverse("admin:imaging_dicomstudy_change", args=[study.pk]),
                "reference": f"ImagingStudy/{study.imaging_study_id}"
                if study.imaging_study_id
                else "",
            }
        )
    return out


def timeline_previews(patient_id: str) -> dict[str, str]:
    """``ImagingStudy/<id>`` → preview URL, for the studies linked to this patient."""
    return {
        study["reference"]: study["preview"]
        for study in patient_studies(patient_id, size=TIMELINE_THUMBNAIL)
        if study["reference"] and study["preview"]
    }
