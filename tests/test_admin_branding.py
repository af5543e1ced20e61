"""The admin is branded CloudDTH (header, page titles, index title) and its index leads to the
ward overview, for staff who land on /admin/ after logging in."""

from __future__ import annotations

import re

import pytest

from .twin_views_support import clinician, clinician_user, roles  # noqa: F401 (fixtures)


def page(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def title(html: str) -> str:
    match = re.search(r"<title>(.*?)</title>", html, re.S)
    assert match, "the page has no <title>"
    return match.group(1).strip()


def test_the_login_page_says_clouddth(client, db):
    html = page(client.get("/admin/login/"))
    assert title(html) == "Log in | CloudDTH"
    assert '<a href="/admin/">CloudDTH</a>' in html
    assert "Django administration" not in html


def test_the_admin_index_is_branded_and_links_the_ward_overview(clinician):  # noqa: F811
    html = page(clinician.get("/admin/"))
    assert title(html) == "Health records, devices and patient twins | CloudDTH"
    assert '<a href="/admin/">CloudDTH</a>' in html
    assert "Django site admin" not in html and "Django administration" not in html
    ward = re.search(r'<a href="/twins/ward/">([^<]+)</a>', html)
    assert ward and ward.group(1) == "Ward overview"
    assert page(clinician.get("/twins/ward/"))  # the link leads somewhere that answers


@pytest.mark.parametrize("path", ["/admin/twins/patienttwin/", "/admin/fhir_api/resource/"])
def test_every_admin_page_keeps_the_brand(clinician, path):  # noqa: F811
    html = page(clinician.get(path))
    assert title(html).endswith("| CloudDTH")
    assert '<a href="/admin/">CloudDTH</a>' in html
