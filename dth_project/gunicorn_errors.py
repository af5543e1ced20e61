"""gunicorn's own error answers as FHIR OperationOutcomes instead of its HTML page.

gunicorn answers some requests before Django sees them: a request line longer than
``limit_request_line`` (414), too many or too large headers (431), a malformed request line,
method, header or chunk (400), an unsupported transfer coding (501). It writes them with
``gunicorn.util.write_error``, an HTML page; a FHIR client expects an OperationOutcome
(hl7.org/fhir/R4B/http.html#summary: "an OperationOutcome SHOULD be returned" with an error
status). ``install`` puts ``write_error`` below in its place (``dth_project/gunicorn.conf.py``
calls it); the status, reason and message stay gunicorn's, only the body changes. The request
line was not understood, so the path is unknown: the OperationOutcome is the answer for every
path, as it is for every error under /fhir.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

# OperationOutcome.issue.code for each status gunicorn answers with (valueset-issue-type).
ISSUE_CODES = {
    400: "invalid",
    403: "forbidden",
    414: "too-long",
    417: "not-supported",
    431: "too-long",
    501: "not-supported",
}


def operation_outcome(status: int, message: str) -> bytes:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": ISSUE_CODES.get(status, "exception"),
                "diagnostics": message or "The request could not be read",
            }
        ],
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def write_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``'s signature; an OperationOutcome body."""
    body = operation_outcome(status_int, mesg)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/fhir+json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    """gunicorn's workers call ``util.write_error`` through the module: replacing it there is
    enough (gunicorn.workers.base.Worker.handle_error)."""
    util.write_error = write_error
