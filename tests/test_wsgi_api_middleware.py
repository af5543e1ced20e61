"""The production WSGI application (dth_project.wsgi) serves /fhir with the API's lean
middleware (no session, CSRF, messages or static files) and every other path with the full
stack, so the admin's login still sets its CSRF cookie."""

from __future__ import annotations

import io
import re
from wsgiref.util import setup_testing_defaults

from django.test import override_settings

from dth_project import wsgi
from fhir_api import json_io


def call(path: str, **environ) -> tuple[str, dict[str, list[str]], bytes]:
    env: dict = {"PATH_INFO": path, "HTTP_HOST": "127.0.0.1", **environ}
    setup_testing_defaults(env)
    env["wsgi.input"] = io.BytesIO(b"")
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status
        answer["headers"] = {}
        for name, value in headers:
            answer["headers"].setdefault(name.lower(), []).append(value)

    body = b"".join(wsgi.application(env, start_response))
    return answer["status"], answer["headers"], body


def test_the_api_handler_leaves_out_only_browser_middleware():
    lean = wsgi.api_middleware()
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in lean
    assert "django.middleware.csrf.CsrfViewMiddleware" not in lean
    assert "django.middleware.security.SecurityMiddleware" in lean
    # CommonMiddleware's checks that matter to the API are APIMiddleware's.
    assert "django.middleware.common.CommonMiddleware" not in lean
    assert "fhir_api.middleware.APIMiddleware" in lean


def test_fhir_goes_through_the_api_handler(db):
    status, headers, body = call("/fhir/metadata")
    assert status.startswith("200")
    assert json_io.loads(body)["resourceType"] == "CapabilityStatement"
    assert "set-cookie" not in headers
    assert "cookie" not in ",".join(headers.get("vary", [])).lower()
    # SecurityMiddleware still runs.
    assert headers["x-content-type-options"] == ["nosniff"]


def test_fhir_errors_and_auth_still_work_through_it(db):
    status, _, body = call("/fhir/Patient")
    assert status.startswith("401")
    assert json_io.loads(body)["resourceType"] == "OperationOutcome"
    status, _, body = call("/fhir/Patient", HTTP_HOST="evil.example")
    assert status.startswith("400")
    assert json_io.loads(body)["resourceType"] == "OperationOutcome"


def test_other_paths_keep_the_full_middleware(db):
    status, headers, _ = call("/admin/login/")
    assert status.startswith("200")
    assert any(c.strip().startswith("csrftoken=") for c in headers.get("set-cookie", []))


def test_the_base_url_is_the_checked_host(db):
    status, headers, body = call("/fhir/metadata", HTTP_HOST="localhost:8765")
    assert status.startswith("200")
    assert json_io.loads(body)["implementation"]["url"] == "http://localhost:8765/fhir"
    assert headers["content-length"] == [str(len(body))]


@override_settings(FHIR_BASE_URL="https://fhir.example.org/r4")
def test_a_configured_base_url_still_checks_the_host(db):
    status, _, body = call("/fhir/metadata", HTTP_HOST="localhost")
    assert json_io.loads(body)["implementation"]["url"] == "https://fhir.example.org/r4"
    status, _, body = call("/fhir/metadata", HTTP_HOST="evil.example")
    assert status.startswith("400")
    assert json_io.loads(body)["resourceType"] == "OperationOutcome"


@override_settings(DISALLOWED_USER_AGENTS=[re.compile(r"^BadBot")])
def test_disallowed_user_agents_are_refused(db):
    status, _, _ = call("/fhir/metadata", HTTP_USER_AGENT="BadBot/1.0")
    assert status.startswith("403")
    status, _, _ = call("/fhir/metadata", HTTP_USER_AGENT="GoodClient/1.0")
    assert status.startswith("200")
