"""Admin of the forecast runs: read-only (runs are written only by ``forecasting.services``),
with a "Forecast now" action that queues a new forecast of the selected runs' series.

Staff with the twins' view permission see the runs (``twins.roles``: nurse, clinician, admin),
as they see the forecast pages; the action needs the permission "forecast now" needs there.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from fhir_api.exceptions import FHIRError
from twins.admin import ReadOnlyAdmin

from . import services
from .access import FORECAST_NOW, VIEW
from .models import ForecastRun


@admin.register(ForecastRun)
class ForecastRunAdmin(ReadOnlyAdmin):
    list_display = (
        "patient",
        "vital",
        "granularity",
        "status",
        "skill_score",
        "beats_baseline",
        "probability_percent",
        "crossing_at",
        "created",
    )
    list_filter = ("status", "beats_baseline", "granularity", "vital")
    search_fields = ("=patient_id", "=code", "vital")
    ordering = ("-created", "-id")
    date_hierarchy = "created"
    actions = ["forecast_now"]
    fields = (
        "patient",
        "code",
        "vital",
        "unit",
        "granularity",
        "status",
        "reason",
        "window_start",
        "window_end",
        "n_points",
        "horizon",
        "skill",
        "beats_baseline",
        "backtest",
        "threshold",
        "direction",
        "probability",
        "crossing_at",
        "fit_seconds",
        "risk_assessment_id",
        "data_digest",
        "basis",
        "points",
        "history",
        "created",
    )
    readonly_fields = fields

    def has_module_permission(self, request) -> bool:
        return super().has_module_permission(request) or request.user.has_perm(VIEW)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm(VIEW)

    def has_forecast_permission(self, request) -> bool:
        return request.user.has_perm(FORECAST_NOW)

    @admin.display(description="patient's forecasts", ordering="patient_id")
    def patient(self, obj: ForecastRun):
        url = reverse("forecasting:patient", args=[obj.patient_id]) + f"#vital-{obj.code}"
        return format_html('<a href="{}">Patient/{}</a>', url, obj.patient_id)

    @admin.display(description="skill", ordering="skill")
    def skill_score(self, obj: ForecastRun) -> str:
        return "—" if obj.skill is None else f"{obj.skill:+.2f}"

    @admin.display(description="P(crossing)", ordering="probability")
    def probability_percent(self, obj: ForecastRun) -> str:
        if obj.probability is None:
            return "—"
        off = "" if obj.beats_baseline else " (early warning off)"
        return f"{obj.probability * 100:.0f} %{off}"

    @admin.action(description="Forecast now", permissions=["forecast"])
    def forecast_now(self, request, queryset) -> None:
        """Queue a forecast of each selected run's series (patient, code), once per series."""
        series = sorted(set(queryset.values_list("patient_id", "code")))
        queued = []
        for patient_id, code in series:
            try:
                services.queue_forecast(patient_id, code)
            except FHIRError as error:
                self.message_user(
                    request, f"Patient/{patient_id} {code}: {error.diagnostics}", messages.ERROR
                )
            else:
                queued.append(f"Patient/{patient_id} {code}")
        if queued:
            self.message_user(
                request,
                f"{len(queued)} forecast{'s' if len(queued) != 1 else ''} queued: "
                + ", ".join(queued),
                messages.SUCCESS,
            )
