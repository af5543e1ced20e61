"""What gunicorn answers itself, before Django sees the request (a request line past its limit,
too many headers, a malformed request line), is an OperationOutcome, as every other error of a
FHIR server: a client parses one error format. Checked against the production server."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

import pytest


def raw(url: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET /fhir/Patient?name=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "414"),
        (
            b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
            + b"\r\n",
            "431",
        ),
        (b"GET /fhir/metadata HTTP/9.9\r\nHost: x\r\n\r\n", "400"),
        (b"G\x01T /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
    ],
    ids=["uri-too-long", "too-many-headers", "bad-version", "bad-method"],
)
def test_gunicorns_own_errors_are_operation_outcomes(live_server_url, request_bytes, status):
    line, headers, body = raw(live_server_url, request_bytes)
    assert line.split(" ")[1] == status, line
    assert headers["content-type"].startswith("application/fhir+json")
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["diagnostics"]
    assert int(headers["content-length"]) == len(body)
