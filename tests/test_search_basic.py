"""Search by _id, _lastUpdated and identifier, with paging and result parameters
(hl7.org/fhir/R4B/search.html, hl7.org/fhir/R4B/http.html#search)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from fhir_api.models import Resource

BASE = "http://testserver/fhir"
S1 = "urn:test:one"
S2 = "urn:test:two"


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def create(api, *identifiers: tuple[str | None, str], resource_type: str = "Patient") -> str:
    body: dict = {"resourceType": resource_type}
    if resource_type == "Observation":
        body |= {"status": "final", "code": {"text": "x"}}
    body["identifier"] = [
        {"value": value} if system is None else {"system": system, "value": value}
        for system, value in identifiers
    ]
    r = api.fhir("POST", f"/fhir/{resource_type}", body)
    assert r.status_code == 201, r.content
    return r.json_body["id"]


def search(api, query: str, path: str = "/fhir/Patient", **headers) -> dict:
    r = api.fhir("GET", f"{path}?{query}" if query else path, **headers)
    assert r.status_code == 200, (query, r.content)
    body = r.json_body
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "searchset"
    return body


def matches(bundle: dict) -> list[str]:
    return sorted(
        e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
    )


def link(bundle: dict, relation: str) -> str | None:
    return next((lk["url"] for lk in bundle["link"] if lk["relation"] == relation), None)


def follow(api, url: str) -> dict:
    parts = urlsplit(url)
    return search(api, parts.query, parts.path)


def assert_outcome(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert response.json_body["resourceType"] == "OperationOutcome"


# --- _id --------------------------------------------------------------------------------------


def test_search_by_id(api):
    a, b, _c = create(api, (S1, "a")), create(api, (S1, "b")), create(api, (S1, "c"))
    assert matches(search(api, f"_id={a}")) == [a]
    assert matches(search(api, f"_id={a},{b}")) == sorted([a, b])
    assert matches(search(api, "_id=unknown")) == []
    assert search(api, f"_id={a}")["total"] == 1


def test_search_by_id_is_per_type(api):
    obs = create(api, (S1, "o"), resource_type="Observation")
    assert matches(search(api, f"_id={obs}")) == []
    assert matches(search(api, f"_id={obs}", "/fhir/Observation")) == [obs]


def test_search_entries_have_full_urls_and_the_current_resource(api):
    pid = create(api, (S1, "a"))
    api.fhir("PUT", f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid, "active": True})
    (entry,) = search(api, f"_id={pid}")["entry"]
    assert entry["fullUrl"] == f"{BASE}/Patient/{pid}"
    assert entry["search"]["mode"] == "match"
    assert entry["resource"]["meta"]["versionId"] == "2"
    assert entry["resource"]["active"] is True


def test_search_without_parameters_lists_the_type(api):
    ids = sorted(create(api, (S1, str(i))) for i in range(3))
    create(api, (S1, "o"), resource_type="Observation")
    bundle = search(api, "")
    assert bundle["total"] == 3
    assert matches(bundle) == ids


# --- _lastUpdated -----------------------------------------------------------------------------

WHEN = {
    "A": datetime(2020, 3, 15, 10, 0, 0, tzinfo=UTC),
    "B": datetime(2021, 6, 1, 0, 0, 0, tzinfo=UTC),
    "C": datetime(2021, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "D": datetime(2022, 1, 1, 0, 0, 0, tzinfo=UTC),
}


@pytest.fixture
def dated(api) -> dict[str, str]:
    """Four Patients last updated at the WHEN instants (set in the store: the clock is real)."""
    ids = {}
    for name, when in WHEN.items():
        ids[name] = create(api, (S1, name))
        Resource.objects.filter(resource_type="Patient", logical_id=ids[name]).update(
            last_updated=when
        )
    return ids


LAST_UPDATED_CASES = [
    ("2021", "BC"),
    ("eq2021", "BC"),
    ("ne2021", "AD"),
    ("gt2021", "D"),
    ("sa2021", "D"),
    ("lt2021", "A"),
    ("eb2021", "A"),
    ("ge2021", "BCD"),
    ("le2021", "ABC"),
    ("eq2021-06", "B"),
    ("eq2021-06-01", "B"),
    ("gt2021-06-01", "CD"),
    ("eq2021-06-01T00:00:00Z", "B"),
    ("eq2021-06-01T02:00:00%2B02:00", "B"),
    ("eq2021-05-31T20:00:00-04:00", "B"),
    ("lt2021-06-01T00:00:00Z", "A"),
    ("le2021-06-01T00:00:00Z", "AB"),
    ("ge2021-12-31T23:59:59.999999Z", "CD"),
    ("eq2021-12-31", "C"),
    ("eq2020-03-15T10:00:00Z", "A"),
    ("gt2022", ""),
    ("lt2020", ""),
    ("ge2000", "ABCD"),
]


def test_last_updated_prefixes_and_precision(api, dated):
    names = {pid: name for name, pid in dated.items()}
    failures = []
    for value, expected in LAST_UPDATED_CASES:
        found = "".join(sorted(names[pid] for pid in matches(search(api, f"_lastUpdated={value}"))))
        if found != expected:
            failures.append(f"_lastUpdated={value}: {found or '-'} instead of {expected or '-'}")
    assert not failures, failures


def test_last_updated_and_or(api, dated):
    both = matches(search(api, "_lastUpdated=ge2021&_lastUpdated=lt2022"))
    assert both == sorted([dated["B"], dated["C"]])
    either = matches(search(api, "_lastUpdated=lt2021,gt2021"))
    assert either == sorted([dated["A"], dated["D"]])


def test_last_updated_of_a_real_write(api):
    pid = create(api, (S1, "now"))
    stamp = api.fhir("GET", f"/fhir/Patient/{pid}").json_body["meta"]["lastUpdated"]
    assert matches(search(api, f"_lastUpdated={stamp}")) == [pid]
    assert matches(search(api, f"_lastUpdated={stamp[:4]}")) == [pid]
    assert matches(search(api, f"_lastUpdated=gt{stamp}")) == []


@pytest.mark.parametrize("value", ["yesterday", "2021-13", "2021-02-30", "gt", "xx2021"])
def test_last_updated_that_is_not_a_date_is_400(api, value):
    assert_outcome(api.fhir("GET", f"/fhir/Patient?_lastUpdated={value}"), 400)


# --- identifier -------------------------------------------------------------------------------


@pytest.fixture
def identified(api) -> dict[str, str]:
    return {
        "s1-v1": create(api, (S1, "v1")),
        "s2-v1": create(api, (S2, "v1")),
        "none-v1": create(api, (None, "v1")),
        "s1-v2": create(api, (S1, "v2"), (S2, "other")),
    }


IDENTIFIER_CASES = [
    (f"{S1}|v1", ["s1-v1"]),
    (f"{S2}|v1", ["s2-v1"]),
    ("|v1", ["none-v1"]),
    (f"{S1}|", ["s1-v1", "s1-v2"]),
    (f"{S2}|", ["s2-v1", "s1-v2"]),
    ("v1", ["s1-v1", "s2-v1", "none-v1"]),
    ("other", ["s1-v2"]),
    (f"{S1}|other", []),
    (f"{S1}|v1,{S2}|other", ["s1-v1", "s1-v2"]),
    ("V1", []),
]


def test_identifier_token_forms(api, identified):
    names = {pid: name for name, pid in identified.items()}
    failures = []
    for query, expected in IDENTIFIER_CASES:
        found = sorted(names[pid] for pid in matches(search(api, f"identifier={query}")))
        if found != sorted(expected):
            failures.append(f"identifier={query}: {found} instead of {sorted(expected)}")
    assert not failures, failures


def test_identifier_with_an_escaped_pipe_in_the_url(api, identified):
    assert matches(search(api, "identifier=urn:test:one%7Cv1")) == [identified["s1-v1"]]


def test_identifier_and_id_together(api, identified):
    pid = identified["s1-v1"]
    assert matches(search(api, f"identifier={S1}|&_id={pid}")) == [pid]
    assert matches(search(api, f"identifier={S2}|&_id={pid}")) == []


# --- paging and result parameters -------------------------------------------------------------


def test_count_and_next_links_page_through_every_match_once(api):
    ids = sorted(create(api, (S1, f"p{i}")) for i in range(5))
    page = search(api, f"identifier={S1}|&_count=2")
    assert link(page, "self").startswith(f"{BASE}/Patient?")
    assert link(page, "previous") is None
    seen = matches(page)
    sizes = [len(page["entry"])]
    while (next_url := link(page, "next")) is not None:
        assert next_url.startswith(f"{BASE}/Patient?")
        query = dict(parse_qsl(urlsplit(next_url).query))
        assert query["_count"] == "2"
        assert query["identifier"] == f"{S1}|"
        page = follow(api, next_url)
        assert page["total"] == 5
        assert link(page, "previous") is not None
        seen += matches(page)
        sizes.append(len(page["entry"]))
        assert len(sizes) < 10
    assert sizes == [2, 2, 1]
    assert sorted(seen) == ids


def test_resources_created_while_paging_do_not_shift_the_pages(api):
    ids = sorted(create(api, (S1, f"p{i}")) for i in range(4))
    page = search(api, "_count=2")
    seen = matches(page)
    create(api, (S1, "late"))
    while (next_url := link(page, "next")) is not None:
        page = follow(api, next_url)
        seen += matches(page)
    assert sorted(seen) == ids


def test_count_zero_gives_the_total_only(api):
    for i in range(3):
        create(api, (S1, str(i)))
    bundle = search(api, "_count=0")
    assert bundle["total"] == 3
    assert matches(bundle) == []


def test_summary_count_gives_the_total_without_entries(api):
    for i in range(3):
        create(api, (S1, str(i)))
    create(api, (S2, "x"))
    bundle = search(api, f"identifier={S1}|&_summary=count")
    assert bundle["total"] == 3
    assert bundle.get("entry", []) == []


def test_total_none_leaves_the_total_out(api):
    pid = create(api, (S1, "a"))
    bundle = search(api, "_total=none")
    assert "total" not in bundle
    assert matches(bundle) == [pid]


def test_total_accurate_is_the_default(api):
    for i in range(3):
        create(api, (S1, str(i)))
    assert search(api, "_count=1")["total"] == 3
    assert search(api, "_count=1&_total=accurate")["total"] == 3


@pytest.mark.parametrize("query", ["_count=-1", "_count=lots", "_total=some", "_summary=maybe"])
def test_bad_result_parameters_are_400(api, query):
    assert_outcome(api.fhir("GET", f"/fhir/Patient?{query}"), 400)


def test_unknown_type_is_404(api):
    assert_outcome(api.fhir("GET", "/fhir/Spaceship?_id=1"), 404)


# --- strict and lenient handling --------------------------------------------------------------


def test_strict_handling_refuses_an_unknown_parameter(api):
    create(api, (S1, "a"))
    r = api.fhir("GET", "/fhir/Patient?shoe-size=9", HTTP_PREFER="handling=strict")
    assert_outcome(r, 400)
    assert "shoe-size" in r.json_body["issue"][0]["diagnostics"]


def test_lenient_handling_ignores_an_unknown_parameter(api):
    pid = create(api, (S1, "a"))
    for headers in ({}, {"HTTP_PREFER": "handling=lenient"}):
        bundle = search(api, f"shoe-size=9&identifier={S1}|a", **headers)
        assert matches(bundle) == [pid]
        self_link = link(bundle, "self")
        assert "shoe-size" not in self_link
        assert "identifier=" in self_link


def test_strict_handling_still_accepts_known_parameters(api):
    pid = create(api, (S1, "a"))
    bundle = search(api, f"_id={pid}&identifier={S1}|a&_count=5", HTTP_PREFER="handling=strict")
    assert matches(bundle) == [pid]


# --- POST _search -----------------------------------------------------------------------------


def form_search(api, form: str, query: str = "", **headers):
    path = "/fhir/Patient/_search" + (f"?{query}" if query else "")
    return api.fhir("POST", path, form, content_type="application/x-www-form-urlencoded", **headers)


def test_post_search_with_form_parameters(api, identified):
    r = form_search(api, f"identifier={S1}%7C")
    assert r.status_code == 200, r.content
    assert r.json_body["type"] == "searchset"
    assert matches(r.json_body) == sorted([identified["s1-v1"], identified["s1-v2"]])
    assert matches(r.json_body) == matches(search(api, f"identifier={S1}|"))


def test_post_search_combines_url_and_body_parameters(api, identified):
    r = form_search(api, f"identifier={S1}%7C", f"_id={identified['s1-v2']}")
    assert matches(r.json_body) == [identified["s1-v2"]]


def test_post_search_next_links_can_be_followed_with_get(api):
    ids = sorted(create(api, (S1, f"p{i}")) for i in range(3))
    r = form_search(api, f"identifier={S1}%7C&_count=2")
    page = r.json_body
    seen = matches(page)
    next_url = link(page, "next")
    assert next_url is not None
    page = follow(api, next_url)
    seen += matches(page)
    assert sorted(seen) == ids
    assert follow(api, link(r.json_body, "self"))["total"] == 3


def test_post_search_strict_handling(api):
    r = form_search(api, "shoe-size=9", HTTP_PREFER="handling=strict")
    assert_outcome(r, 400)
