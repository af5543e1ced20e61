"""The production server (``python -m dth_project.serve``) as an operator runs it: from the
environment, ``ACCESS_LOG`` names a file that gets one line per request and ``PORT`` the port
it binds; a worker process that dies is replaced. Checked by starting the real server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests

from .celery_support import one_worker_server, server_ready, wait

pytestmark = pytest.mark.live


def test_access_log_gets_a_line_per_request_on_the_port_from_the_environment(
    django_db_setup, tmp_path
):
    access, log = tmp_path / "access.log", tmp_path / "server.log"
    with one_worker_server(log, "server-settings", ACCESS_LOG=str(access)) as (_proc, url):
        assert requests.get(f"{url}/fhir/Patient", timeout=10).status_code == 401
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
    log = tmp_path / "server.log"
    with one_worker_server(log, "server-respawn") as (proc, url):
        (first,) = workers(proc.pid)
        os.kill(first, signal.SIGKILL)  # as the kernel's OOM killer would
        wait(
            lambda: workers(proc.pid) - {first} and server_ready(proc, url, log),
            "another worker to answer",
            timeout=30,
            interval=0.2,
        )
