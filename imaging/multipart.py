"""Reading a ``multipart/related`` request body (RFC 2387, RFC 2046 5.1), as STOW-RS sends it.

DICOM PS3.18 10.5 (Store Transaction): the body is ``multipart/related; type="application/dicom";
boundary=…`` with one DICOM file per part. The parts are cut out of the body by their boundary
lines without any re-encoding, so each file arrives byte for byte as it was sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from fhir_api.exceptions import BadRequest, UnsupportedMediaType

DICOM = "application/dicom"


@dataclass(frozen=True)
class Part:
    name: str
    content_type: str
    data: bytes


def _header(value: str) -> Message:
    message = Message()
    message["Content-Type"] = value
    return message


def boundary_of(content_type: str) -> str:
    """The boundary of a ``multipart/related`` Content-Type whose root type is DICOM, or 415."""
    header = _header(content_type or "")
    if header.get_content_type() != "multipart/related":
        raise UnsupportedMediaType(
            f"Content-Type '{content_type or '(none)'}' is not supported: STOW-RS takes"
            ' multipart/related; type="application/dicom" (DICOM PS3.18 10.5)'
        )
    root = str(header.get_param("type") or DICOM).strip().lower()
    if root != DICOM:
        raise UnsupportedMediaType(
            f"multipart/related of type '{root}' is not supported: send type=\"{DICOM}\""
        )
    boundary = header.get_param("boundary")
    if not boundary or not isinstance(boundary, str):
        raise BadRequest("The multipart/related Content-Type has no boundary parameter")
    return boundary


def parse_related(content_type: str, body: bytes) -> list[Part]:
    """The parts of a ``multipart/related`` body, in order; 400 when it is not well formed."""
    boundary = boundary_of(content_type).encode("latin-1")
    data = b"\r\n" + body
    delimiter = b"\r\n--" + boundary
    position = data.find(delimiter)
    if position < 0:
        raise BadRequest("The body has no part: the boundary from the Content-Type never occurs")
    parts: list[Part] = []
    while True:
        position += len(delimiter)
        if data[position : position + 2] == b"--":
            return parts
        line_end = data.find(b"\r\n", position)
        if line_end < 0 or data[position:line_end].strip(b" \t"):
            raise BadRequest(f"Part {len(parts) + 1}: malformed boundary line")
        headers_end = data.find(b"\r\n\r\n", line_end)
        if data[line_end : line_end + 4] == b"\r\n\r\n":
            headers_end = line_end
        if headers_end < 0:
            raise BadRequest(f"Part {len(parts) + 1}: its headers do not end with a blank line")
        raw_headers = data[line_end + 2 : headers_end].decode("latin-1")
        headers = HeaderParser().parsestr(raw_headers) if raw_headers.strip() else Message()
        start = headers_end + 4
        end = data.find(delimiter, start)
        if end < 0:
            raise BadRequest(
                f"Part {len(parts) + 1}: the body ends without the closing boundary (cut short?)"
            )
        number = len(parts) + 1
        name = (
            headers.get("Content-Location") or headers.get("Content-ID") or f"part {number}"
        ).strip()
        content_type_of_part = headers.get_content_type() if headers.get("Content-Type") else DICOM
        parts.append(Part(name=name, content_type=content_type_of_part, data=data[start:end]))
        position = end


def wants_multipart(accept: str) -> bool:
    """Whether an Accept header asks for ``multipart/related`` (PS3.18 8.7.3.5) over bare DICOM."""
    types = [item.split(";")[0].strip().lower() for item in accept.split(",")]
    return "multipart/related" in types and DICOM not in types


def related_body(data: bytes) -> tuple[bytes, str]:
    """One DICOM file as a ``multipart/related; type="application/dicom"`` body and its type."""
    boundary = f"dicom-{uuid.uuid4().hex}"
    body = (
        f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="{DICOM}"; boundary={boundary}'
