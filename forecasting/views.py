"""The clinicians' forecast pages, inside the admin site: the fleet view and each patient's
forecasts, with a "forecast now" button.

Staff only (``staff_member_required``), with the twins' roles (``twins.roles``): seeing needs
the permission to view a patient's twin; "forecast now" needs the triage permission (nurse,
clinician, admin). Views only parse the request, call one function and render or redirect;
the write path is ``forecasting.services.queue_forecast``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from fhir_api.exceptions import FHIRError, NotFound
from fhir_api.validation import ID_RE
from twins import roles

from . import services
from .access import FORECAST_NOW, VIEW
from .fleet import fleet as fleet_rows
from .page import patient_forecasts


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "title": title,
        "can": {**roles.abilities(request.user), "forecast": request.user.has_perm(FORECAST_NOW)},
        **extra,
    }


def _known_id(patient_id: str) -> str:
    """The id when it can be a FHIR id; else a 404 (a NUL byte would make PostgreSQL fail)."""
    if not ID_RE.match(patient_id):
        raise Http404(f"No Patient/{patient_id}")
    return patient_id


def _patient_url(patient_id: str, code: str = "") -> str:
    url = reverse("forecasting:patient", args=[patient_id])
    return f"{url}#vital-{code}" if code else url


@staff_member_required
@require_GET
def fleet(request: HttpRequest) -> HttpResponse:
    roles.require(request.user, VIEW)
    return render(
        request, "forecasting/fleet.html", _context(request, "Forecast risk", **fleet_rows())
    )


@staff_member_required
@require_GET
def patient(request: HttpRequest, patient_id: str) -> HttpResponse:
    roles.require(request.user, VIEW)
    facts = patient_forecasts(_known_id(patient_id))
    if facts is None:
        raise Http404(f"No Patient/{patient_id} and no forecast of it")
    return render(
        request,
        "forecasting/patient.html",
        _context(request, f"Forecasts: {facts['patient'].name}", **facts),
    )


@staff_member_required
@require_POST
def forecast_now(request: HttpRequest, patient_id: str) -> HttpResponse:
    roles.require(request.user, FORECAST_NOW)
    code = request.POST.get("code", "").strip()
    try:
        queued = services.queue_forecast(_known_id(patient_id), code or None)
    except NotFound as error:
        raise Http404(str(error.diagnostics)) from None
    except FHIRError as error:
        messages.error(request, error.diagnostics)
    else:
        messages.success(request, "Forecast queued: " + ", ".join(v.label for v in queued))
    return redirect(_patient_url(patient_id, code))
