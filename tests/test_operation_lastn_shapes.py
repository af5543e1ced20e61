"""$lastn's statement is written once per shape and reused for the next patient
(operations.lastn.statement): each patient must get their own latest Observations, the
statement must be the one written afresh for that patient, and later writes must show."""

from __future__ import annotations

import pytest

from fhir_api.operations import lastn as lastn_op
from fhir_api.search import shapes
from fhir_api.search.types import reference

from .test_operation_lastn import HR, TEMP, ids, lastn, observation, vitals  # noqa: F401

pytestmark = pytest.mark.django_db

QUERIES = [
    "patient={}",
    "patient={}&category=vital-signs&max=2",
    f"patient=Patient/{{}}&code={HR},{TEMP}",
    "subject=Patient/{}&status=final&date=ge2024",
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_statement_kept_for_a_shape_is_the_one_written_for_each_patient(vitals, query):  # noqa: F811
    lastn_op._shapes.clear()
    with reference.serving("http://testserver/fhir"):
        for patient in ("p1", "p2", "nobody", "p1"):
            items = [tuple(part.split("=", 1)) for part in query.format(patient).split("&")]
            request = lastn_op.parse(items, strict=True)
            for exact in (False, True):
                assert lastn_op.statement(
                    request, patient, exact=exact
                ) == lastn_op.written_statement(request, patient, exact=exact)
    assert lastn_op._shapes, "the shape was kept"
    assert all(kept is not None for kept in lastn_op._shapes.values())


def test_each_patient_gets_their_own_latest(api, vitals):  # noqa: F811
    lastn_op._shapes.clear()
    first = {p: ids(lastn(api, f"patient={p}&max=2")) for p in ("p1", "p2", "nobody")}
    assert first == {
        "p1": ["glu-2", "glu-1", "temp-1", "bp-2", "bp-1", "hr-4", "hr-3"],
        "p2": ["temp-p2", "hr-p2"],
        "nobody": [],
    }
    # written after its shape was kept: found for the patient it belongs to, and only there
    observation(api, "hr-p2-later", HR, "2026-01-01T08:00:00Z", patient="p2")
    assert ids(lastn(api, "patient=p2&max=2")) == ["temp-p2", "hr-p2-later", "hr-p2"]
    assert ids(lastn(api, "patient=p1&max=2")) == first["p1"]


def test_a_request_holding_the_stand_in_is_answered_and_not_kept(api, vitals):  # noqa: F811
    lastn_op._shapes.clear()
    bundle = lastn(api, f"patient=p1&code={shapes.STAND_IN}")
    assert ids(bundle) == []
    assert not lastn_op._shapes
