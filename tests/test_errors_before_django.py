"""What the production server's HTTP layer does with requests before Django sees them
(dth_project/serve.py), checked against the real server.

A long GET search is a FHIR client's everyday request (many ``_id`` values, a long chain): it
reaches the application and is answered like any search. A request that is not HTTP/1.1 at
all is refused with its 4xx status and the connection closed, and the server goes on serving.
"""

from __future__ import annotations

import contextlib
import json
import socket
from urllib.parse import urlparse

import pytest
import requests

pytestmark = pytest.mark.live


def raw(url: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        # The server may answer and close before it has read all of a long request.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], {k.lower(): v for k, v in headers.items()}, body


def test_a_search_url_of_12_kb_is_answered_as_a_search(live):
    # As many values as a parameter may OR (100), each as long as an id may be (64).
    ids = ",".join(f"{i:03d}".ljust(64, "x") for i in range(100))
    mrns = ",".join(f"http://hospital.example/mrn|{i:03d}".ljust(60, "0") for i in range(100))
    answer = requests.get(
        f"{live['base']}/Patient",
        params={"_id": ids, "identifier": mrns},
        headers={"Authorization": f"Bearer {live['token']}"},
        timeout=30,
    )
    assert len(answer.request.url) > 12_000  # gunicorn, before, refused more than 4 KB (414)
    assert answer.status_code == 200, answer.text[:500]
    bundle = answer.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["total"] == 0


@pytest.mark.parametrize(
    "request_bytes, statuses",
    [
        (
            b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
            + b"\r\n",
            {"431"},
        ),
        # 414 or 431, as much of the request line has arrived when the buffer is full.
        (
            b"GET /fhir/Patient?name=" + b"a" * 500_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            {"414", "431"},
        ),
        (b"GET /fhir/metadata HTTP/9.9\r\nHost: x\r\n\r\n", {"400"}),
        (b"G\x01T /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n", {"400"}),
    ],
    ids=["too-many-headers", "head-over-400-kb", "bad-version", "bad-method"],
)
def test_what_is_not_http_is_refused_and_the_server_goes_on(live, request_bytes, statuses):
    line, headers, body = raw(live["url"], request_bytes)
    assert line.split(" ")[1] in statuses, line
    assert headers.get("connection") == "close"
    assert int(headers.get("content-length", "0")) == len(body)
    answer = requests.get(
        f"{live['base']}/metadata",
        headers={"Authorization": f"Bearer {live['token']}"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert json.loads(answer.content)["resourceType"] == "CapabilityStatement"
