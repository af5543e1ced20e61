"""WSGI entry point that the production server serves (``dth_project/serve.py``).

Requests under ``/fhir`` go through a handler with only the middleware a bearer-token JSON API
uses: no sessions, CSRF, Django authentication, messages or static files, which exist for the
browser pages (admin, clinicians' views) and cost every FHIR request time for nothing (the FHIR
views authenticate with DRF's ``BearerTokenAuthentication`` and are CSRF-exempt), and the
API's own ``APIMiddleware`` in place of ``CommonMiddleware``. Every other path gets the full
``MIDDLEWARE`` of the settings.
"""

from __future__ import annotations

import gc
import io
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dth_project.settings")

application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (after the settings module is chosen)
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

# Middleware that only browser pages need.
BROWSER_ONLY = {
    "dth_project.staticfiles.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
}


# Middleware the API replaces with its own (fhir_api/middleware.py says what it keeps).
API_REPLACES = {"django.middleware.common.CommonMiddleware": "fhir_api.middleware.APIMiddleware"}


def api_middleware() -> list[str]:
    """The settings' MIDDLEWARE without the browser-only entries, in the same order, with
    ``API_REPLACES`` applied."""
    return [API_REPLACES.get(m, m) for m in settings.MIDDLEWARE if m not in BROWSER_ONLY]


class APIHandler(WSGIHandler):
    """A WSGI handler whose middleware chain is ``api_middleware()``."""

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = api_middleware()
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


def is_fhir(path: str) -> bool:
    return path == "/fhir" or path.startswith("/fhir/")


def with_chunked_body(environ: dict) -> dict:
    """``environ`` with a body sent chunked (``Transfer-Encoding: chunked``, no
    ``Content-Length``: how HTTP clients send a body they stream) given to Django with its
    length. Django reads ``CONTENT_LENGTH`` bytes of a body and none without it, so such a
    body was lost: a POSTed resource read as empty. The server hands it over decoded.

    At most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` + 1 bytes are read: a longer body then has a length
    over the limit, and Django refuses it (413) as it refuses one whose ``Content-Length`` is.
    """
    if (
        environ.get("CONTENT_LENGTH")
        or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        return environ
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = environ["wsgi.input"].read() if limit is None else environ["wsgi.input"].read(limit + 1)
    return {**environ, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}


class Router:
    """``/fhir`` to the API handler, everything else to Django's full handler."""

    def __init__(self, full: WSGIHandler, api: WSGIHandler) -> None:
        self.full, self.api = full, api

    def __call__(self, environ, start_response):
        handler = self.api if is_fhir(environ.get("PATH_INFO", "")) else self.full
        return handler(with_chunked_body(environ), start_response)


application = Router(application, APIHandler())


# Garbage collection in a server process: what is alive now (Django, the apps, fhir.resources'
# models; some 130,000 objects) lives as long as the process, so it is moved out of the
# collector's generations (gc.freeze, as the gc documentation advises for servers) instead
# of being walked again by every full collection. A request leaves a few dozen objects in
# reference cycles (request, view and response point at each other), so the youngest
# generation, collected every 700 allocations, was collected every 15-20 requests; every
# 10,000 it is collected about once in 250. In bench/search.py (session 7, bench/README.md)
# the server's CPU per request fell by about a tenth for searches returning pages of 50.
# The cycles wait longer to be freed: bench/ingest.py's server workers peaked at 177 MB
# against 163 MB before (batches of 500 readings; the target is 400 MB).
gc.freeze()
gc.set_threshold(10_000, 50, 100)
