"""history: instance, type and system (hl7.org/fhir/R4B/http.html#history)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

BASE = "http://testserver/fhir"


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def create(api, resource_type: str = "Patient", **fields) -> dict:
    body = {"resourceType": resource_type, **fields}
    if resource_type == "Observation":
        body = {"status": "final", "code": {"text": "x"}, **body}
    r = api.fhir("POST", f"/fhir/{resource_type}", body)
    assert r.status_code == 201, r.content
    return r.json_body


def update(api, resource: dict, **changes) -> dict:
    body = {k: v for k, v in resource.items() if k != "meta"} | changes
    r = api.fhir("PUT", f"/fhir/{resource['resourceType']}/{resource['id']}", body)
    assert r.status_code == 200, r.content
    return r.json_body


def get(api, url: str) -> dict:
    """GET a path or one of the server's absolute links; the answer must be a history Bundle."""
    parts = urlsplit(url)
    r = api.fhir("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
    assert r.status_code == 200, r.content
    assert r.json_body["resourceType"] == "Bundle"
    assert r.json_body["type"] == "history"
    return r.json_body


def link(bundle: dict, relation: str) -> str | None:
    return next((lk["url"] for lk in bundle.get("link", []) if lk["relation"] == relation), None)


def version_of(entry: dict) -> tuple[str, str]:
    """(Type/id, version) of an entry, from fullUrl and response.etag (tombstones too)."""
    return entry["fullUrl"].removeprefix(BASE + "/"), entry["response"]["etag"][3:-1]


@pytest.fixture
def three_versions(api) -> str:
    """A Patient created, updated, then deleted."""
    p = create(api, name=[{"family": "One"}])
    update(api, p, name=[{"family": "Two"}])
    assert api.fhir("DELETE", f"/fhir/Patient/{p['id']}").status_code == 204
    return p["id"]


def test_instance_history_lists_every_version_newest_first(api, three_versions):
    pid = three_versions
    create(api, name=[{"family": "Someone else"}])
    bundle = get(api, f"/fhir/Patient/{pid}/_history")
    assert bundle["total"] == 3
    assert [version_of(e) for e in bundle["entry"]] == [
        (f"Patient/{pid}", "3"),
        (f"Patient/{pid}", "2"),
        (f"Patient/{pid}", "1"),
    ]
    deleted, updated, created = bundle["entry"]
    assert created["request"] == {"method": "POST", "url": "Patient"}
    assert created["response"]["status"].startswith("201")
    assert created["response"]["etag"] == 'W/"1"'
    assert created["resource"]["name"] == [{"family": "One"}]
    assert created["resource"]["meta"]["versionId"] == "1"
    assert updated["request"] == {"method": "PUT", "url": f"Patient/{pid}"}
    assert updated["response"]["status"].startswith("200")
    assert updated["resource"]["name"] == [{"family": "Two"}]
    assert deleted["request"] == {"method": "DELETE", "url": f"Patient/{pid}"}
    assert deleted["response"]["status"].startswith("204")
    assert "resource" not in deleted
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"{BASE}/Patient/{pid}"
        assert entry["response"]["lastModified"].endswith("Z")
    modified = [e["response"]["lastModified"] for e in bundle["entry"]]
    assert modified == sorted(modified, reverse=True)
    assert created["response"]["lastModified"] == created["resource"]["meta"]["lastUpdated"]


def test_instance_history_of_an_unknown_resource_is_404(api):
    r = api.fhir("GET", "/fhir/Patient/nobody/_history")
    assert r.status_code == 404
    assert r.json_body["resourceType"] == "OperationOutcome"


def test_history_of_an_unknown_type_is_404(api):
    assert api.fhir("GET", "/fhir/Spaceship/_history").status_code == 404


def test_type_history_has_only_that_type_newest_first(api):
    p1 = create(api)
    create(api, "Observation")
    p2 = create(api)
    update(api, p1, active=True)
    bundle = get(api, "/fhir/Patient/_history")
    assert [version_of(e) for e in bundle["entry"]] == [
        (f"Patient/{p1['id']}", "2"),
        (f"Patient/{p2['id']}", "1"),
        (f"Patient/{p1['id']}", "1"),
    ]
    assert bundle["total"] == 3


def test_system_history_has_every_type_newest_first(api, three_versions):
    obs = create(api, "Observation")
    org = create(api, "Organization", name="Acme")
    bundle = get(api, "/fhir/_history")
    assert [version_of(e) for e in bundle["entry"]] == [
        (f"Organization/{org['id']}", "1"),
        (f"Observation/{obs['id']}", "1"),
        (f"Patient/{three_versions}", "3"),
        (f"Patient/{three_versions}", "2"),
        (f"Patient/{three_versions}", "1"),
    ]
    assert get(api, "/fhir/_history/")["total"] == 5


def test_count_pages_follow_next_links_to_the_end_each_version_once(api):
    resources = [create(api, name=[{"family": f"P{i}"}]) for i in range(4)]
    for resource in resources:
        update(api, resource, active=True)
    api.fhir("DELETE", f"/fhir/Patient/{resources[0]['id']}")
    expected = get(api, "/fhir/Patient/_history?_count=100")
    assert expected["total"] == 9
    expected_versions = [version_of(e) for e in expected["entry"]]

    page = get(api, "/fhir/Patient/_history?_count=2")
    seen = [version_of(e) for e in page["entry"]]
    assert len(seen) == 2
    # Versions written while the client pages must not shift or repeat the pages still to come.
    update(api, resources[1], active=False)
    create(api, name=[{"family": "Late"}])
    pages = 1
    while (next_url := link(page, "next")) is not None:
        assert next_url.startswith(f"{BASE}/Patient/_history?")
        assert parse_qs(urlsplit(next_url).query)["_count"] == ["2"]
        page = get(api, next_url)
        assert 0 < len(page["entry"]) <= 2
        seen += [version_of(e) for e in page["entry"]]
        pages += 1
        assert pages < 20
    assert pages == 5
    assert seen == expected_versions


def test_count_on_instance_and_system_history(api):
    p = create(api)
    for i in range(3):
        p = update(api, p, active=bool(i % 2))
    page = get(api, f"/fhir/Patient/{p['id']}/_history?_count=3")
    assert [version_of(e)[1] for e in page["entry"]] == ["4", "3", "2"]
    rest = get(api, link(page, "next"))
    assert [version_of(e)[1] for e in rest["entry"]] == ["1"]
    assert link(rest, "next") is None
    assert len(get(api, "/fhir/_history?_count=1")["entry"]) == 1


def test_self_link_of_a_history_bundle(api):
    p = create(api)
    bundle = get(api, f"/fhir/Patient/{p['id']}/_history?_count=5")
    self_url = link(bundle, "self")
    assert self_url.startswith(f"{BASE}/Patient/{p['id']}/_history")
    assert get(api, self_url)["entry"] == bundle["entry"]


def test_since_gives_the_versions_at_or_after_an_instant(api):
    p = create(api, name=[{"family": "Before"}])
    other = create(api)
    v2 = update(api, p, name=[{"family": "After"}])
    since = v2["meta"]["lastUpdated"]
    create(api)
    bundle = get(api, f"/fhir/Patient/_history?_since={since}")
    versions = [version_of(e) for e in bundle["entry"]]
    assert (f"Patient/{p['id']}", "2") in versions
    assert (f"Patient/{p['id']}", "1") not in versions
    assert (f"Patient/{other['id']}", "1") not in versions
    assert len(versions) == 2
    instance = get(api, f"/fhir/Patient/{p['id']}/_history?_since={since}")
    assert [version_of(e)[1] for e in instance["entry"]] == ["2"]


def test_since_is_kept_in_the_next_link(api):
    first = create(api)
    for _ in range(3):
        create(api)
    since = first["meta"]["lastUpdated"]
    page = get(api, f"/fhir/Patient/_history?_since={since}&_count=2")
    next_url = link(page, "next")
    assert parse_qs(urlsplit(next_url).query)["_since"] == [since]
    assert len(get(api, next_url)["entry"]) == 2


def test_since_in_the_future_is_empty(api):
    create(api)
    bundle = get(api, "/fhir/Patient/_history?_since=2999-01-01T00:00:00Z")
    assert bundle["total"] == 0
    assert bundle.get("entry", []) == []


def test_at_gives_the_version_current_at_that_time(api):
    v1 = create(api, name=[{"family": "First"}])
    v2 = update(api, v1, name=[{"family": "Second"}])
    v3 = update(api, v2, name=[{"family": "Third"}])
    pid = v1["id"]
    for current in (v1, v2, v3):
        at = current["meta"]["lastUpdated"]
        bundle = get(api, f"/fhir/Patient/{pid}/_history?_at={at}")
        assert [version_of(e)[1] for e in bundle["entry"]] == [current["meta"]["versionId"]], at
    year = v1["meta"]["lastUpdated"][:4]
    whole_year = get(api, f"/fhir/Patient/{pid}/_history?_at={year}")
    assert [version_of(e)[1] for e in whole_year["entry"]] == ["3", "2", "1"]
    before = get(api, f"/fhir/Patient/{pid}/_history?_at={int(year) - 1}")
    assert before.get("entry", []) == []


@pytest.mark.parametrize(
    "query", ["_since=yesterday", "_at=soon", "_count=many", "_count=-1", "colour=blue"]
)
def test_bad_history_parameters_are_400(api, query):
    p = create(api)
    for path in (f"/fhir/Patient/{p['id']}/_history", "/fhir/Patient/_history", "/fhir/_history"):
        r = api.fhir("GET", f"{path}?{query}")
        assert r.status_code == 400, (path, r.content)
        assert r.json_body["resourceType"] == "OperationOutcome"
