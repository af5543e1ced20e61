"""The one DRF exception handler: every error becomes an OperationOutcome with its status.

Maps this app's ``FHIRError`` hierarchy, DRF's own exceptions (authentication, parsing,
method, media type) and Django's ``Http404``/``PermissionDenied``/``SuspiciousOperation``. Anything unexpected is
logged and answered 500 with an OperationOutcome; the transaction it ran in has rolled back.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response

from .exceptions import (
    BadRequest,
    FHIRError,
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    ServerError,
    UnsupportedMediaType,
)

log = logging.getLogger("fhir_api")


def as_fhir_error(exc: Exception) -> FHIRError:
    if isinstance(exc, FHIRError):
        return exc
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return NotAuthenticated(
            str(exc.detail) if exc.detail else "Authentication is required",
            headers={"WWW-Authenticate": 'Bearer realm="fhir"'},
        )
    if isinstance(exc, drf.PermissionDenied | DjangoPermissionDenied):
        return Forbidden(str(getattr(exc, "detail", "")) or "You may not do this")
    if isinstance(exc, drf.MethodNotAllowed):
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return UnsupportedMediaType(str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return NotAcceptable(str(exc.detail))
    if isinstance(exc, drf.ParseError):
        return BadRequest(str(exc.detail), code="structure")
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(str(exc) or "The request body is too large")
    if isinstance(exc, SuspiciousOperation):
        # Django's refusals of a request (too many form fields, a malformed header …).
        return BadRequest(str(exc) or "The request was refused", code="structure")
    if isinstance(exc, Http404 | drf.NotFound):
        return NotFound(str(exc) or "Not found")
    if isinstance(exc, drf.APIException):
        error = FHIRError(str(exc.detail))
        error.status = exc.status_code
        return error
    if isinstance(exc, DatabaseError):
        log.exception("Database error while handling a FHIR request")
        return ServerError("The database could not complete the request; nothing was changed")
    log.exception("Unexpected error while handling a FHIR request")
    return ServerError(f"Internal error ({type(exc).__name__}); nothing was changed")


def fhir_exception_handler(exc: Exception, context) -> Response:
    error = as_fhir_error(exc)
    response = Response(error.outcome(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response
