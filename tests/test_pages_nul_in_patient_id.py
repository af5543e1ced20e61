"""A patient id with a NUL byte (``%00``) in the clinicians' pages is a 404, never a 500.

PostgreSQL refuses a NUL in a query (Django raises ValueError), so a hand-typed or fuzzed URL
such as ``/twins/patient/%00/`` was an Internal Server Error on the twin page, its
``series.json`` and forms, the forecast page and its "forecast now" button.
"""

from __future__ import annotations

import pytest

# Fixtures of the clinicians' views (pytest finds them where they are imported).
from .twin_views_support import (  # noqa: F401
    clinician,
    clinician_user,
    make_patient,
    nurse,
    nurse_user,
    roles,
)

BAD_IDS = ["%00", "a%00b"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    "path",
    [
        "/twins/patient/{id}/",
        "/twins/patient/{id}/series.json?vital=heart_rate&range=24h",
        "/forecasting/patient/{id}/",
    ],
)
def test_pages_of_a_patient_id_with_a_nul_byte_are_not_found(clinician, path, bad):  # noqa: F811
    response = clinician.get(path.format(id=bad))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "path, data",
    [
        ("/twins/patient/%00/stage/", {"stage": "acute", "reason": "admitted"}),
        ("/twins/patient/%00/settings/", {"scale": "1"}),
        ("/forecasting/patient/%00/forecast/", {"code": "8867-4"}),
    ],
)
def test_forms_posted_to_a_patient_id_with_a_nul_byte_are_not_found(clinician, path, data):  # noqa: F811
    assert clinician.post(path, data).status_code == 404


def test_the_pages_of_a_real_patient_still_answer(clinician):  # noqa: F811
    patient_id = make_patient("Nul")
    assert clinician.get(f"/twins/patient/{patient_id}/").status_code == 200
