"""The clinicians' views, inside the admin site: ward overview, patient twin page, triage,
settings, lifecycle stage and diagnosis forms.

Staff only (``staff_member_required``: others go to the admin login), and each view asks the
permission its role needs (``twins.roles``: a nurse who posts a settings change gets 403).
Views only parse the request, call one function of ``twins`` and render or redirect.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from fhir_api.exceptions import FHIRError, NotFound
from fhir_api.search.dates import format_instant

from . import diagnosis, roles, services
from .forms import (
    AlertActionForm,
    ConditionForm,
    ImpressionForm,
    SettingsForm,
    StageForm,
)
from .models import Alert, PatientTwin
from .patient import overview
from .series import RANGES, series
from .timeline import timeline
from .ward import ward_rows

WARD_POLL_MS = 1500


def _twin(patient_id: str) -> PatientTwin:
    try:
        return services.twin_for(patient_id)
    except NotFound as error:
        raise Http404(str(error)) from None


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    """The admin site's context (header, sidebar, user links) plus the page's own."""
    return {
        **admin.site.each_context(request),
        "title": title,
        "can": roles.abilities(request.user),
        **extra,
    }


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = fallback
    return redirect(target)


def _form_errors(request: HttpRequest, form) -> None:
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{label or field}: {error}" if field != "__all__" else error)


def _patient_url(patient_id: str) -> str:
    return reverse("twins:patient", args=[patient_id])


@staff_member_required
@require_GET
def ward(request: HttpRequest) -> HttpResponse:
    roles.require(request.user, roles.VIEW)
    return render(
        request,
        "twins/ward.html",
        _context(
            request,
            "Ward overview",
            rows=ward_rows(),
            poll_ms=WARD_POLL_MS,
            poll_seconds=f"{WARD_POLL_MS / 1000:g}",
        ),
    )


@staff_member_required
@require_GET
def ward_json(request: HttpRequest) -> JsonResponse:
    """The ward's rows as JSON, with the table body rendered from them (the page swaps it in)."""
    roles.require(request.user, roles.VIEW)
    rows = ward_rows()
    html = render_to_string(
        "twins/_ward_rows.html", {"rows": rows, "can": roles.abilities(request.user)}, request
    )
    return JsonResponse(
        {"generated": format_instant(timezone.now()), "patients": rows, "html": html}
    )


@staff_member_required
@require_GET
def patient(request: HttpRequest, patient_id: str) -> HttpResponse:
    roles.require(request.user, roles.VIEW)
    twin = _twin(patient_id)
    facts = overview(twin)
    return render(
        request,
        "twins/patient.html",
        _context(
            request,
            facts["patient"].name,
            **facts,
            timeline=timeline(patient_id, newest_first=True),
            ranges=list(RANGES),
            series_config={"url": reverse("twins:series", args=[patient_id])},
            action_form=AlertActionForm(),
            settings_form=SettingsForm(initial=SettingsForm.initial_for(twin)),
            stage_form=StageForm(initial={"stage": twin.stage}),
            impression_form=ImpressionForm(),
            condition_form=ConditionForm(),
        ),
    )


@staff_member_required
@require_GET
def series_json(request: HttpRequest, patient_id: str) -> JsonResponse:
    roles.require(request.user, roles.VIEW)
    twin = _twin(patient_id)
    try:
        data = series(twin, request.GET.get("vital", "heart_rate"), request.GET.get("range", "24h"))
    except FHIRError as error:
        return JsonResponse({"error": error.diagnostics}, status=400)
    return JsonResponse(data)


@staff_member_required
@require_POST
def alert_action(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = get_object_or_404(Alert, pk=alert_id)
    form = AlertActionForm(request.POST)
    action = request.POST.get("action", "")
    roles.require(request.user, roles.ACTION_PERMISSION.get(action, roles.MANAGE_ALERTS))
    if not form.is_valid():
        _form_errors(request, form)
        return _back(request, _patient_url(alert.patient_id))
    try:
        services.act_on_alert(alert.pk, user=request.user, **form.kwargs())
    except FHIRError as error:
        messages.error(request, error.diagnostics)
    else:
        messages.success(request, f"Alert {form.cleaned_data['action']}: {alert.summary}")
    return _back(request, _patient_url(alert.patient_id))


@staff_member_required
@require_POST
def update_settings(request: HttpRequest, patient_id: str) -> HttpResponse:
    roles.require(request.user, roles.CHANGE_SETTINGS)
    form = SettingsForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect(_patient_url(patient_id))
    twin = _run(request, services.update_settings, patient_id, **form.kwargs())
    if twin is not None:
        total = twin.news2["total"] if twin.news2 else "—"
        messages.success(request, f"Settings saved; NEWS2 scored again: {total}")
    return redirect(_patient_url(patient_id))


@staff_member_required
@require_POST
def change_stage(request: HttpRequest, patient_id: str) -> HttpResponse:
    roles.require(request.user, roles.CHANGE_STAGE)
    form = StageForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    elif _run(
        request,
        services.change_stage,
        patient_id,
        form.cleaned_data["stage"],
        by=request.user.get_username(),
        why=form.cleaned_data["reason"],
    ):
        messages.success(request, f"Lifecycle stage changed to {form.cleaned_data['stage']}")
    return redirect(_patient_url(patient_id))


@staff_member_required
@require_POST
def record_impression(request: HttpRequest, patient_id: str) -> HttpResponse:
    roles.require(request.user, roles.DIAGNOSE)
    form = ImpressionForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    elif found := _run(
        request, diagnosis.record_impression, patient_id, request.user, **form.cleaned_data
    ):
        messages.success(request, f"Clinical impression recorded: ClinicalImpression/{found}")
    return redirect(_patient_url(patient_id))


@staff_member_required
@require_POST
def record_condition(request: HttpRequest, patient_id: str) -> HttpResponse:
    roles.require(request.user, roles.DIAGNOSE)
    form = ConditionForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    elif found := _run(
        request, diagnosis.record_condition, patient_id, request.user, **form.cleaned_data
    ):
        messages.success(request, f"Condition recorded: Condition/{found}")
    return redirect(_patient_url(patient_id))


def _run(request: HttpRequest, write, *args: Any, **kwargs: Any) -> Any:
    """Call a write path; a FHIR error becomes a message on the page (None returned)."""
    try:
        return write(*args, **kwargs)
    except NotFound as error:
        raise Http404(str(error.diagnostics)) from None
    except FHIRError as error:
        messages.error(request, error.diagnostics)
        return None
