"""The API handler's stand-in for Django's ``CommonMiddleware`` (see ``dth_project/wsgi.py``).

For ``/fhir`` requests ``CommonMiddleware`` did three things that matter: it refused a Host
header not in ``ALLOWED_HOSTS`` (400, an OperationOutcome through ``handler400``), refused the
``DISALLOWED_USER_AGENTS`` (403), and set ``Content-Length``. Its other work is for browser
pages: ``APPEND_SLASH`` is off and a ``PREPEND_WWW`` redirect would lose a POSTed body.

This does those three and works out the request's FHIR base URL from the checked host in the
same step (``request.fhir_base``), so that a request checks and parses its Host header once,
not once here and again in every absolute URL the views write (``fhir_api.views.base_url``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied


class APIMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        user_agent = request.META.get("HTTP_USER_AGENT")
        if user_agent is not None:
            for pattern in settings.DISALLOWED_USER_AGENTS:
                if pattern.search(user_agent):
                    raise PermissionDenied("Forbidden user agent")
        host = request.get_host()  # DisallowedHost: 400
        # As request.build_absolute_uri("/fhir"): a host that passed the check is ASCII.
        request.fhir_base = settings.FHIR_BASE_URL or f"{request.scheme}://{host}/fhir"
        response = self.get_response(request)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response
