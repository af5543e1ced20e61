"""Shared fixtures: an authenticated FHIR client, and a live production server for real clients.

With ``REQUIRE_POSTGRES=1`` (as CI sets) the settings refuse anything but PostgreSQL, so the
suite cannot quietly pass on SQLite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from rest_framework.test import APIClient

from fhir_api import json_io
from fhir_api.models import ApiToken

ROOT = Path(__file__).resolve().parent.parent
FHIR_JSON = "application/fhir+json"


def pytest_report_header(config) -> str:
    db = settings.DATABASES["default"]
    return f"database: {db['ENGINE'].rsplit('.', 1)[-1]} (REQUIRE_POSTGRES={settings.REQUIRE_POSTGRES})"


class FHIRClient(APIClient):
    """APIClient that speaks FHIR JSON and parses bodies with decimals intact."""

    def fhir(self, method: str, path: str, body=None, *, content_type: str = FHIR_JSON, **headers):
        data = (
            None if body is None else body if isinstance(body, str | bytes) else json_io.dumps(body)
        )
        response = getattr(self, method.lower())(
            path, data=data, content_type=content_type, **headers
        )
        response.json_body = json_io.loads(response.content) if response.content else None
        return response


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("clinician", password="correct horse battery")


@pytest.fixture
def token(user) -> str:
    return ApiToken.issue(user, name="tests")[1]


@pytest.fixture
def api(db, token) -> FHIRClient:
    client = FHIRClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anon(db) -> FHIRClient:
    return FHIRClient()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The production server (``python -m dth_project.serve``) on the test database, for real
    FHIR clients."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REQUIRE_POSTGRES": "0",
        "SECRET_KEY": "live-test-server",
        "DEBUG": "0",
        "FHIR_BASE_URL": "",
    }
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    log = open(settings.VAR_DIR / "live-server.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dth_project.serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(f"{url}/fhir/metadata", timeout=10)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the live server did not start: see var/live-server.log"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def live(live_server_url, transactional_db, token) -> dict[str, str]:
    """The live server's FHIR base and a bearer token valid on it (committed, so it sees it)."""
    return {"base": f"{live_server_url}/fhir", "token": token, "url": live_server_url}
