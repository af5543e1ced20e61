"""Patient scoping (``query.scoped_patient``): a search with ``patient=X`` or
``subject=Patient/X`` passes X to every index subquery. It is only an optimisation, so every
answer must be what the same search gives without it: checked here against the search without
the patient criterion filtered by the client, and against the server with scoping turned off,
on data made to trip it (subjects that are Groups, Patients as performers or asserters, the
same ids on several types, absolute references)."""

from __future__ import annotations

import pytest

from fhir_api.search import query

from .search_helpers import LOINC, SNOMED, bundle, codeable, ids, matches, observation, put, ref

A, B = "pat-a", "pat-b"


def subject_is(resource: dict, patient: str, element: str = "subject") -> bool:
    """Whether the resource's subject is Patient/``patient`` (relative or absolute)."""
    reference = (resource.get(element) or {}).get("reference", "")
    segments = reference.split("/_history/", 1)[0].rstrip("/").split("/")
    return len(segments) >= 2 and segments[-2] == "Patient" and segments[-1] == patient


def client_side(api, resource_type: str, criteria: str, patient: str, element: str) -> set[str]:
    """The search without the patient criterion, filtered by the client."""
    sep = "&" if criteria else ""
    body = bundle(api, f"{resource_type}?{criteria}{sep}_count=1000")
    return {
        e["resource"]["id"] for e in matches(body) if subject_is(e["resource"], patient, element)
    }


@pytest.fixture
def data(api):
    for pid, gender in ((A, "female"), (B, "male")):
        put(api, {"resourceType": "Patient", "id": pid, "gender": gender})
    put(api, {"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Osler"}]})
    # A Group with the same id as patient A, and A as a member.
    put(
        api,
        {
            "resourceType": "Group",
            "id": A,
            "type": "person",
            "actual": True,
            "member": [{"entity": ref(f"Patient/{A}")}],
        },
    )
    put(
        api,
        {
            "resourceType": "Encounter",
            "id": "enc-a",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": ref(f"Patient/{A}"),
        },
    )
    put(
        api,
        {
            "resourceType": "Encounter",
            "id": "enc-group",
            "status": "in-progress",
            "class": {"code": "AMB"},
            "subject": ref(f"Group/{A}"),
        },
    )
    put(
        api,
        {
            "resourceType": "List",
            "id": "watch",
            "status": "current",
            "mode": "working",
            "entry": [{"item": ref("Observation/a-hr")}, {"item": ref("Observation/g-hr")}],
        },
    )

    def obs(obs_id: str, subject: str | None, code: str, value=None, **extra) -> None:
        unit = "mm[Hg]" if code == "8480-6" else "/min"
        body = observation(subject, code, value=value, unit=unit, **extra)
        put(api, {**body, "id": obs_id})

    bp = [("8480-6", 150, "mm[Hg]"), ("8462-4", 95, "mm[Hg]")]
    obs("a-hr", f"Patient/{A}", "8867-4", 110, effective="2026-03-02T08:00:00Z")
    obs("a-hr2", f"Patient/{A}", "8867-4", 65, effective="2025-12-31T23:30:00-05:00")
    obs("a-bp", f"Patient/{A}", "85354-9", components=bp, effective="2026-03-05")
    obs("a-sys", f"Patient/{A}", "8480-6", 120, encounter=ref("Encounter/enc-a"))
    obs("a-prelim", f"Patient/{A}", "8867-4", 130, status="preliminary")
    # Patient A measured by patient B (a Patient as performer).
    obs("a-by-b", f"Patient/{A}", "8867-4", 140, performer=[ref(f"Patient/{B}")])
    # Subject by an absolute URL to this server and by a versioned reference.
    obs("a-abs", f"http://testserver/fhir/Patient/{A}", "8867-4", 101)
    obs("a-ver", f"Patient/{A}/_history/1", "8867-4", 102)
    # Subject is the Group with A's id, performed by A: in A's compartment, not A's subject.
    obs(
        "g-hr",
        f"Group/{A}",
        "8867-4",
        120,
        performer=[ref(f"Patient/{A}")],
        encounter=ref("Encounter/enc-group"),
    )
    obs("g-bp", f"Group/{A}", "85354-9", components=bp)
    # Patient B's own, performed by A.
    obs("b-hr", f"Patient/{B}", "8867-4", 115, performer=[ref(f"Patient/{A}")])
    obs("b-bp", f"Patient/{B}", "85354-9", components=[("8480-6", 135, "mm[Hg]")])
    obs("nobody", None, "8867-4", 99)
    obs(
        "a-tagged",
        f"Patient/{A}",
        "8867-4",
        90,
        meta={"tag": [{"system": "http://example.org/tags", "code": "device"}]},
    )

    def condition(cond_id: str, subject: str, code: str, asserter: str | None = None) -> None:
        body = {
            "resourceType": "Condition",
            "id": cond_id,
            "subject": ref(subject),
            "code": codeable(SNOMED, code),
        }
        if asserter:
            body["asserter"] = ref(asserter)
        put(api, body)

    condition("c-a", f"Patient/{A}", "38341003")
    condition("c-a-by-b", f"Patient/{A}", "44054006", asserter=f"Patient/{B}")
    condition("c-group-by-a", f"Group/{A}", "38341003", asserter=f"Patient/{A}")
    condition("c-b-by-a", f"Patient/{B}", "38341003", asserter=f"Patient/{A}")


OBSERVATION_CRITERIA = [
    "",
    "code=8867-4",
    f"code={LOINC}|8867-4",
    "code=8867-4,85354-9",
    "code:not=8867-4",
    "code:text=heart",
    "status=final",
    "status:not=final",
    "value-quantity=gt100",
    "value-quantity=lt100|http://unitsofmeasure.org|/min",
    "value-quantity:missing=true",
    "date=2026-03",
    "date=ge2026-01-01",
    "date:missing=true",
    "component-code-value-quantity=8480-6$gt140",
    "combo-code-value-quantity=8480-6$gt100",
    "code-value-quantity=8867-4$gt100",
    "performer=Patient/pat-b",
    "performer:missing=false",
    "encounter.status=finished",
    "encounter:Encounter.class=AMB",
    "encounter:missing=true",
    "_tag=device",
    "_tag:not=device",
    "_id=a-hr,g-hr,b-hr",
    "_lastUpdated=gt2000-01-01",
    "_list=watch",
    "_has:List:item:status=current",
    "code=8867-4&value-quantity=gt100&status=final",
]

SCOPES = [
    "patient={p}",
    "subject=Patient/{p}",
    "subject:Patient={p}",
    "patient=Patient/{p}",
    "subject=http://testserver/fhir/Patient/{p}",
]


@pytest.mark.parametrize("patient", [A, B])
def test_scoped_observation_search_is_the_unscoped_search_filtered(api, data, patient):
    for criteria in OBSERVATION_CRITERIA:
        expected = client_side(api, "Observation", criteria, patient, "subject")
        sep = "&" if criteria else ""
        for scope in SCOPES:
            scoped_by = scope.format(p=patient)
            scoped = ids(api, f"Observation?{scoped_by}{sep}{criteria}")
            assert scoped == expected, (scoped_by, criteria)


@pytest.mark.parametrize(
    "criteria",
    ["", "code=38341003", "code:not=38341003", "asserter=Patient/pat-b", "asserter:missing=true"],
)
@pytest.mark.parametrize("scope", ["patient={p}", "subject=Patient/{p}", "subject:Patient={p}"])
def test_scoped_condition_search_is_the_unscoped_search_filtered(api, data, scope, criteria):
    for patient in (A, B):
        sep = "&" if criteria else ""
        scoped = ids(api, f"Condition?{scope.format(p=patient)}{sep}{criteria}")
        assert scoped == client_side(api, "Condition", criteria, patient, "subject"), (
            patient,
            criteria,
        )


def test_scoped_encounter_search(api, data):
    assert ids(api, f"Encounter?patient={A}") == {"enc-a"}
    assert ids(api, f"Encounter?subject=Group/{A}") == {"enc-group"}
    assert ids(api, f"Encounter?patient={A}&status=finished") == {"enc-a"}
    assert ids(api, f"Encounter?subject={A}") == {"enc-a", "enc-group"}


def test_subject_that_is_a_group_is_not_scoped_to_a_patient(api, data):
    assert ids(api, f"Observation?subject=Group/{A}&code=8867-4") == {"g-hr"}
    assert ids(api, f"Observation?subject:Group={A}") == {"g-hr", "g-bp"}
    # an id alone may be any target type: both A's and the Group's
    found = ids(api, f"Observation?subject={A}&code=8867-4")
    assert {"a-hr", "g-hr"} <= found and "b-hr" not in found


def test_performer_is_not_the_subject(api, data):
    assert ids(api, f"Observation?performer=Patient/{A}") == {"g-hr", "b-hr"}
    assert ids(api, f"Observation?performer=Patient/{A}&patient={B}") == {"b-hr"}
    assert ids(api, f"Observation?performer=Patient/{A}&patient={A}") == set()


SCOPED_QUERIES = [
    f"Observation?patient={A}&{c}" if c else f"Observation?patient={A}"
    for c in OBSERVATION_CRITERIA
] + [
    f"Observation?subject=Patient/{B}&code=8867-4",
    f"Observation?subject:Patient={A}&_has:List:item:status=current",
    f"Condition?patient={A}&code=38341003",
    f"Condition?subject=Patient/{B}&asserter=Patient/{A}",
    f"Encounter?patient={A}&class=AMB",
]


def test_same_answer_with_scoping_turned_off(api, data, monkeypatch):
    scoped = {}
    for search_query in SCOPED_QUERIES:
        resource_type, _, params = search_query.partition("?")
        request = query.parse(resource_type, query.parse_query_string(params), strict=True)
        assert query.scoped_patient(request) is not None, f"{search_query} is meant to be scoped"
        scoped[search_query] = ids(api, search_query)
    monkeypatch.setattr(query, "scoped_patient", lambda request: None)
    for search_query in SCOPED_QUERIES:
        assert ids(api, search_query) == scoped[search_query], search_query


@pytest.mark.parametrize(
    "params",
    [
        f"subject=Group/{A}",
        f"subject={A}",
        f"performer=Patient/{A}",
        f"patient={A},{B}",
        "patient:missing=false",
        f"subject:identifier=x|{A}",
        "subject:Patient.gender=female",
        f"patient=Patient/{A}/_history/1",
    ],
)
def test_searches_that_must_not_be_scoped(params):
    request = query.parse("Observation", query.parse_query_string(params), strict=True)
    assert query.scoped_patient(request) is None
