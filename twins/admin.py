"""Admin pages of the twins: read-only where the twin owns the data.

A twin, its alerts and its lifecycle events are written only by the twin (``twins.services``)
and by the clinicians' pages (triage, settings, stage): the admin lists and shows them, with
links to the patient twin page where they are acted on.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .display import SEVERITY
from .models import Alert, AlertAction, LifecycleEvent, PatientTwin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def twin_page(patient_id: str):
    url = reverse("twins:patient", args=[patient_id])
    return format_html('<a href="{}">Patient/{}</a>', url, patient_id)


@admin.register(PatientTwin)
class PatientTwinAdmin(ReadOnlyAdmin):
    list_display = ("patient", "stage", "news2_total", "risk", "news2_scale", "updated")
    list_filter = ("stage", "news2_scale")
    search_fields = ("=patient_id",)
    ordering = ("-risk", "patient_id")
    fields = (
        "patient",
        "stage",
        "stage_since",
        "news2_scale",
        "on_oxygen",
        "consciousness",
        "thresholds",
        "risk",
        "news2",
        "state",
        "applied_upto",
        "settled_upto",
        "updated",
    )
    readonly_fields = fields

    @admin.display(description="patient twin page", ordering="patient_id")
    def patient(self, obj: PatientTwin):
        return twin_page(obj.patient_id)

    @admin.display(description="NEWS2")
    def news2_total(self, obj: PatientTwin):
        if not obj.news2:
            return "—"
        partial = " (partial)" if obj.news2.get("partial") else ""
        return f"{obj.news2.get('total')} {obj.news2.get('band')}{partial}"


class AlertActionInline(admin.TabularInline):
    model = AlertAction
    fields = ("at", "action", "by", "comment", "fhir_reference")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("summary", "patient", "severity_label", "status", "assigned_to", "opened")
    list_filter = ("status", "severity", "rule")
    search_fields = ("=patient_id", "summary", "problem")
    ordering = ("-opened",)
    fields = (
        "patient",
        "problem",
        "rule",
        "severity",
        "predicted",
        "summary",
        "status",
        "assigned_to",
        "opened",
        "last_seen",
        "lower_since",
        "resolved",
        "flag_id",
        "evidence",
    )
    readonly_fields = fields
    inlines = [AlertActionInline]

    @admin.display(description="patient", ordering="patient_id")
    def patient(self, obj: Alert):
        return twin_page(obj.patient_id)

    @admin.display(description="severity", ordering="severity")
    def severity_label(self, obj: Alert) -> str:
        return SEVERITY.get(obj.severity, str(obj.severity))


@admin.register(LifecycleEvent)
class LifecycleEventAdmin(ReadOnlyAdmin):
    list_display = ("patient", "from_stage", "to_stage", "at", "by", "why")
    list_filter = ("to_stage",)
    search_fields = ("=patient_id", "why", "by")
    ordering = ("-at",)
    fields = ("patient", "from_stage", "to_stage", "at", "by", "why", "fhir_reference")
    readonly_fields = fields

    @admin.display(description="patient", ordering="patient_id")
    def patient(self, obj: LifecycleEvent):
        return twin_page(obj.patient_id)
