"""Django's error pages for requests under /fhir: an OperationOutcome, never an HTML page.

Errors raised before a FHIR view runs (a ``Host`` header not in ``ALLOWED_HOSTS``, which
Django's middleware refuses with a 400) or outside DRF's exception handler reach Django's
``handler400``/``handler500``; ``dth_project.urls`` points them here. Other paths get Django's
own pages (hl7.org/fhir/R4B/http.html#errors: FHIR errors are OperationOutcomes).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.views import defaults

from . import json_io
from .exceptions import BadRequest, FHIRError, ServerError


def _is_fhir(request) -> bool:
    path = request.path_info
    return path == "/fhir" or path.startswith("/fhir/")


def _outcome(error: FHIRError) -> HttpResponse:
    return HttpResponse(
        json_io.dumps(error.outcome()),
        status=error.status,
        content_type="application/fhir+json; charset=utf-8",
    )


def bad_request(request, exception, template_name: str = defaults.ERROR_400_TEMPLATE_NAME):
    if _is_fhir(request):
        return _outcome(BadRequest("The request was refused: " + (str(exception) or "bad request")))
    return defaults.bad_request(request, exception, template_name)


def server_error(request, template_name: str = defaults.ERROR_500_TEMPLATE_NAME):
    if _is_fhir(request):
        return _outcome(ServerError("Internal error; nothing was changed"))
    return defaults.server_error(request, template_name)
