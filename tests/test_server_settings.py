"""The production server (``python -m dth_project.serve``) as an operator configures it, from
the environment: ``ACCESS_LOG`` names a file that gets one line per request, and ``PORT`` the
port it binds. Checked by starting the real server."""

from __future__ import annotations

import pytest
import requests

from .celery_support import app_env, server_ready, spawn, stop, wait
from .conftest import _free_port

pytestmark = pytest.mark.live


def test_access_log_gets_a_line_per_request_on_the_port_from_the_environment(
    django_db_setup, tmp_path
):
    port = _free_port()
    access = tmp_path / "access.log"
    env = app_env("server-settings", "memory://", "unused", PORT=str(port), ACCESS_LOG=str(access))
    out = tmp_path / "server.log"
    proc = spawn(["dth_project.serve", "--workers", "1"], env, out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: server_ready(proc, url, out), "the server to start", timeout=60, interval=0.2)
        assert requests.get(f"{url}/fhir/Patient", timeout=10).status_code == 401
    finally:
        stop([proc])
    lines = access.read_text().splitlines()
    assert any('"GET /fhir/metadata HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /fhir/Patient HTTP/1.1" 401' in line for line in lines), lines
