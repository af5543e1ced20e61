"""The lifecycle twin of each patient (the CloudDTH paper's virtual patient).

``PatientTwin`` holds where the patient stands now, kept in step with every write that
concerns them: the latest value of each vital, short and long trends, the personal baseline,
device freshness, the NEWS2 score, and the clinician's settings (NEWS2 scale, oxygen,
consciousness, thresholds). It is updated incrementally from new Observations (``applied_upto``
and ``settled_upto`` / ``applied_above`` say which of the store's rows it has applied), never
recomputed over the patient's history.

``VitalHour`` holds hourly aggregates per vital: the personal baseline is the median and MAD of
the last 14 days of hourly means, which stays robust to a bad hour and costs a few hundred
rows to recompute once an hour.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

STAGES = [
    ("registered", "registered"),
    ("monitored", "monitored"),
    ("acute", "acute episode"),
    ("hospitalised", "hospitalised"),
    ("recovering", "recovering"),
    ("discharged", "discharged from monitoring"),
    ("deceased", "deceased"),
]
SEVERITIES = [(1, "low"), (2, "medium"), (3, "high")]


class PatientTwin(models.Model):
    patient_id = models.CharField("FHIR Patient id", max_length=64, unique=True)
    stage = models.CharField(max_length=20, choices=STAGES, default="registered")
    stage_since = models.DateTimeField(auto_now_add=True)
    # {vital: {"value", "time", "observation"}}, trends, baselines, devices: see twins.state
    state = models.JSONField(default=dict)
    news2 = models.JSONField(null=True, blank=True)
    news2_scale = models.PositiveSmallIntegerField(
        default=1, choices=[(1, "scale 1"), (2, "scale 2 (hypercapnic respiratory failure)")]
    )
    on_oxygen = models.BooleanField(
        null=True, blank=True, help_text="Unknown (blank) is scored as air and said so"
    )
    consciousness = models.CharField(
        max_length=12,
        blank=True,
        default="",
        choices=[
            ("", "unknown"),
            ("alert", "alert"),
            ("confusion", "new confusion"),
            ("voice", "voice"),
            ("pain", "pain"),
            ("unresponsive", "unresponsive"),
        ],
    )
    thresholds = models.JSONField(
        default=dict, blank=True, help_text='Overrides, e.g. {"heart_rate": {"high": 120}}'
    )
    # The store's row ids (Resource.pk) of the patient's Observations: the highest applied; the
    # safe watermark (every Observation at or below it is applied: rows above it may still
    # commit late, out of id order); and the ids above the safe watermark already applied.
    applied_upto = models.BigIntegerField(default=0)
    settled_upto = models.BigIntegerField(default=0)
    applied_above = models.JSONField(default=list, blank=True)
    risk = models.IntegerField(default=0, help_text="Sort key of the ward overview")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "twins_patient_twin"
        indexes = [models.Index(fields=["-risk", "patient_id"], name="twins_risk")]

    def __str__(self) -> str:
        return f"Twin of Patient/{self.patient_id}"

    def clean(self) -> None:
        """A form over the twin (the admin's) refuses thresholds that are not numbers."""
        from .rules import threshold_problems

        problems = threshold_problems(self.thresholds)
        if problems:
            raise ValidationError({"thresholds": problems})


class VitalHour(models.Model):
    patient_id = models.CharField(max_length=64)
    vital = models.CharField(max_length=32)
    hour = models.DateTimeField()
    n = models.IntegerField(default=0)
    total = models.FloatField(default=0)
    low = models.FloatField()
    high = models.FloatField()

    class Meta:
        db_table = "twins_vital_hour"
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "vital", "hour"], name="twins_vital_hour_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.vital} {self.hour:%Y-%m-%d %H}h"


class LifecycleEvent(models.Model):
    """A change of lifecycle stage: who, why, when, and the FHIR resource that mirrors it."""

    patient_id = models.CharField(max_length=64)
    from_stage = models.CharField(max_length=20, blank=True, default="")
    to_stage = models.CharField(max_length=20)
    at = models.DateTimeField()
    by = models.CharField(max_length=150)
    why = models.TextField(blank=True, default="")
    fhir_reference = models.CharField(max_length=130, blank=True, default="")

    class Meta:
        db_table = "twins_lifecycle_event"
        ordering = ["patient_id", "at"]

    def __str__(self) -> str:
        return f"{self.patient_id}: {self.from_stage or '—'} → {self.to_stage}"


class Alert(models.Model):
    """One ongoing problem of one patient: it escalates and de-escalates, it does not repeat."""

    ACTIVE, ACKNOWLEDGED, RESOLVED = "active", "acknowledged", "resolved"

    patient_id = models.CharField(max_length=64)
    problem = models.CharField(
        max_length=64, help_text="rule:key, e.g. news2 or threshold:heart_rate"
    )
    rule = models.CharField(max_length=40)
    severity = models.PositiveSmallIntegerField(choices=SEVERITIES)
    predicted = models.BooleanField(default=False)
    summary = models.CharField(max_length=300)
    status = models.CharField(
        max_length=14,
        choices=[(ACTIVE, "active"), (ACKNOWLEDGED, "acknowledged"), (RESOLVED, "resolved")],
        default=ACTIVE,
    )
    opened = models.DateTimeField()
    last_seen = models.DateTimeField()
    lower_since = models.DateTimeField(null=True, blank=True)
    resolved = models.DateTimeField(null=True, blank=True)
    assigned_to = models.CharField(max_length=150, blank=True, default="")
    flag_id = models.CharField(max_length=64, blank=True, default="")
    evidence = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "twins_alert"
        indexes = [models.Index(fields=["patient_id", "status"], name="twins_alert_open")]
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "problem"],
                condition=~models.Q(status="resolved"),
                name="twins_one_open_alert",
            )
        ]

    def __str__(self) -> str:
        return f"{self.patient_id}: {self.summary}"


class AlertAction(models.Model):
    """A clinician's action on an alert, also recorded in FHIR (a Provenance on the Flag)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=20)  # acknowledge, assign, escalate, resolve, comment
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    at = models.DateTimeField(auto_now_add=True)
    comment = models.TextField(blank=True, default="")
    fhir_reference = models.CharField(max_length=130, blank=True, default="")

    class Meta:
        db_table = "twins_alert_action"
        ordering = ["at"]

    def __str__(self) -> str:
        return f"{self.action} by {self.by} at {self.at:%Y-%m-%d %H:%M}"
