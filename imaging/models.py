"""DICOM studies and instances as CloudDTH keeps them.

The files themselves live whole in Django storage under their sha256 (content-addressed); these
rows say what each file is and which FHIR ImagingStudy describes it
(https://hl7.org/fhir/R4B/imagingstudy.html). A study whose DICOM PatientID matches no Patient
has an empty ``patient_id``: it waits in the quarantine list until a clinician links it.
"""

from __future__ import annotations

from django.db import models


class DicomStudy(models.Model):
    study_uid = models.CharField("StudyInstanceUID", max_length=64, unique=True)
    dicom_patient_id = models.CharField("DICOM PatientID", max_length=64, blank=True, default="")
    dicom_patient_name = models.CharField(max_length=200, blank=True, default="")
    patient_id = models.CharField(
        "FHIR Patient id",
        max_length=64,
        blank=True,
        default="",
        help_text="Empty while the study is quarantined (no Patient matched its PatientID)",
    )
    imaging_study_id = models.CharField(
        "FHIR ImagingStudy id", max_length=64, blank=True, default=""
    )
    started = models.DateTimeField(null=True, blank=True)
    description = models.CharField(max_length=200, blank=True, default="")
    linked_by = models.CharField(max_length=150, blank=True, default="")
    received = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "DICOM studies"
        indexes = [models.Index(fields=["patient_id", "-started"], name="dicom_study_patient")]

    def __str__(self) -> str:
        return f"{self.study_uid} ({self.patient_id or 'quarantined'})"

    @property
    def quarantined(self) -> bool:
        return not self.patient_id


class DicomInstance(models.Model):
    PREVIEW_OK = "ok"
    PREVIEW_UNAVAILABLE = "unavailable"
    PREVIEW_NONE = "none"
    PREVIEW_STATES = [
        (PREVIEW_OK, "rendered"),
        (PREVIEW_UNAVAILABLE, "unavailable"),
        (PREVIEW_NONE, "not an image"),
    ]

    study = models.ForeignKey(DicomStudy, on_delete=models.PROTECT, related_name="instances")
    sop_instance_uid = models.CharField("SOPInstanceUID", max_length=64, unique=True)
    sop_class_uid = models.CharField("SOPClassUID", max_length=64)
    series_uid = models.CharField("SeriesInstanceUID", max_length=64)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=200, blank=True, default="")
    instance_number = models.IntegerField(null=True, blank=True)
    modality = models.CharField(max_length=16, blank=True, default="")
    body_part = models.CharField("BodyPartExamined", max_length=64, blank=True, default="")
    transfer_syntax = models.CharField(max_length=64, blank=True, default="")
    number_of_frames = models.IntegerField(default=1)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    storage_name = models.CharField(max_length=255, help_text="Name in the DICOM storage")
    preview = models.CharField(max_length=12, choices=PREVIEW_STATES, default=PREVIEW_NONE)
    preview_note = models.CharField(max_length=200, blank=True, default="")
    received = models.DateTimeField(auto_now_add=True)
    received_by = models.CharField(
        max_length=150, blank=True, default="", help_text="Who sent the file (user or command)"
    )

    class Meta:
        indexes = [models.Index(fields=["series_uid", "instance_number"], name="dicom_series")]

    def __str__(self) -> str:
        return f"{self.modality} {self.sop_instance_uid}"
