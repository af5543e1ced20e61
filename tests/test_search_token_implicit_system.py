"""token search on ``code`` elements (hl7.org/fhir/R4B/search.html#token): a code of a
required binding is in that binding's CodeSystem, so ``[system]|[code]`` finds it.

``Patient.gender`` is bound (required) to http://hl7.org/fhir/ValueSet/administrative-gender,
whose one CodeSystem is http://hl7.org/fhir/administrative-gender; ``Observation.status`` to
observation-status. The systems come from the R4B definitions
(``scripts/build_search_parameters.py``) and are written in the token rows by index extraction,
which ``manage.py reindex`` runs too.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from fhir_api.models import TokenIndex

from .search_helpers import create, ids, observation

GENDER = "http://hl7.org/fhir/administrative-gender"
OBS_STATUS = "http://hl7.org/fhir/observation-status"


@pytest.fixture
def data(api):
    d = {
        "ann": create(api, {"resourceType": "Patient", "gender": "female"}),
        "ben": create(api, {"resourceType": "Patient", "gender": "male"}),
        "kim": create(api, {"resourceType": "Patient"}),
    }
    d["final"] = create(api, observation(None, "8867-4"))
    d["prelim"] = create(api, observation(None, "8867-4", status="preliminary"))
    return d


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"gender={GENDER}|male", {"ben"}),
        (f"gender={GENDER}|female,{GENDER}|male", {"ann", "ben"}),
        (f"gender={GENDER}|", {"ann", "ben"}),
        ("gender=male", {"ben"}),
        ("gender=http://example.org/other-genders|male", set()),
        ("gender=|male", set()),  # |code: a code without a system, and gender has one
        (f"gender:not={GENDER}|male", {"ann", "kim"}),
    ],
)
def test_gender_by_its_system(api, data, query, expected):
    assert ids(api, f"Patient?{query}") == {data[k] for k in expected}


def test_observation_status_by_its_system(api, data):
    assert ids(api, f"Observation?status={OBS_STATUS}|final") == {data["final"]}
    assert ids(api, f"Observation?status={OBS_STATUS}|") == {data["final"], data["prelim"]}


def test_reindex_writes_the_system(api, data):
    # Rows as an older server wrote them (no system): reindex rewrites them with it.
    TokenIndex.objects.filter(resource_type="Patient", param="gender").update(system="")
    assert ids(api, f"Patient?gender={GENDER}|male") == set()
    call_command("reindex", "Patient", verbosity=0)
    assert ids(api, f"Patient?gender={GENDER}|male") == {data["ben"]}
