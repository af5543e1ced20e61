"""The production server (``python -m dth_project.serve``) as an operator runs it: from the
environment, ``ACCESS_LOG`` names a file that gets one line per request and ``PORT`` the port
it binds; a worker process that dies is replaced. Checked by starting the real server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

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


def workers(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux's /proc)."""
    return {
        int(child)
        for children in Path(f"/proc/{pid}/task").glob("*/children")
        for child in children.read_text().split()
    }


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads Linux's /proc")
def test_a_worker_that_dies_is_replaced(django_db_setup, tmp_path):
    port = _free_port()
    env = app_env("server-respawn", "memory://", "unused", PORT=str(port))
    out = tmp_path / "server.log"
    proc = spawn(["dth_project.serve", "--workers", "1"], env, out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: server_ready(proc, url, out), "the server to start", timeout=60, interval=0.2)
        (first,) = workers(proc.pid)
        os.kill(first, signal.SIGKILL)  # as the kernel's OOM killer would
        wait(
            lambda: workers(proc.pid) - {first} and server_ready(proc, url, out),
            "another worker to answer",
            timeout=30,
            interval=0.2,
        )
    finally:
        stop([proc])
