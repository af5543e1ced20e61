"""The admin's "Link to a patient" page with study ids that are not numbers (``ids=²``, a
character Python calls a digit but cannot read as a number) lists nothing to link, never a 500."""

from __future__ import annotations

import pytest

from .twin_views_support import clinician, clinician_user, roles  # noqa: F401 (fixtures)

URL = "/admin/imaging/dicomstudy/link/"


@pytest.mark.parametrize("ids", ["²", "1,²", "x,%00", "99999999999999999999999999"])
def test_link_page_with_ids_that_are_not_numbers_says_choose_studies(clinician, ids):  # noqa: F811
    response = clinician.get(URL, {"ids": ids})
    assert response.status_code == 302
    assert response["Location"] == "/admin/imaging/dicomstudy/"
    response = clinician.post(URL, {"ids": ids, "patient": "P-1"})
    assert response.status_code == 302
