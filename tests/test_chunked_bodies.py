"""A request body sent chunked (``Transfer-Encoding: chunked``, no ``Content-Length``), as an
HTTP client sends a body it streams, is read like any other: the resource is stored, and a
body over ``FHIR_MAX_BODY_BYTES`` is refused 413 with an OperationOutcome. Django reads a body
only by its ``Content-Length``, so such a body used to read as empty (dth_project/wsgi.py).
Checked against the real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from .celery_support import one_worker_server

pytestmark = pytest.mark.live

FHIR_JSON = "application/fhir+json"


def chunks(resource: dict, size: int = 7) -> Iterator[bytes]:
    """The resource's JSON in pieces: ``requests`` sends a generator chunked."""
    data = json.dumps(resource).encode()
    for start in range(0, len(data), size):
        yield data[start : start + size]


def post_chunked(base: str, token: str, resource: dict, size: int = 7) -> requests.Response:
    answer = requests.post(
        f"{base}/{resource['resourceType']}",
        data=chunks(resource, size),
        headers={"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON},
        timeout=30,
    )
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in answer.request.headers
    return answer


def test_a_resource_posted_chunked_is_stored(live):
    patient = {"resourceType": "Patient", "name": [{"family": "Chunked", "given": ["Ada"]}]}
    answer = post_chunked(live["base"], live["token"], patient)
    assert answer.status_code == 201, answer.text
    read = requests.get(
        answer.headers["Location"],
        headers={"Authorization": f"Bearer {live['token']}"},
        timeout=10,
    )
    assert read.status_code == 200
    assert read.json()["name"] == patient["name"]


def test_a_chunked_body_over_the_limit_is_refused_413(transactional_db, token, tmp_path):
    limit = {"FHIR_BASE_URL": "", "FHIR_MAX_BODY_BYTES": "2048"}
    with one_worker_server(tmp_path / "server.log", "chunked-bodies", **limit) as (_proc, url):
        base = f"{url}/fhir"
        big = {"resourceType": "Patient", "name": [{"family": "x" * 3000}]}
        refused = post_chunked(base, token, big, size=512)
        assert refused.status_code == 413, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        small = {"resourceType": "Patient", "name": [{"family": "Small"}]}
        assert post_chunked(base, token, small).status_code == 201
