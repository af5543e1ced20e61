"""Dates at the ends of the calendar (hl7.org/fhir/R4B/search.html#date).

``9999-12-31`` covers the last day there is and ``0001-01-01`` the first: their intervals end
at the last instant a database column holds (and begin at the first), so they are written,
found and compared like any other date, and ``gt9999-12-31`` or ``lt0001-01-01`` find nothing
rather than overflowing.
"""

from __future__ import annotations

import pytest

from .search_helpers import create, ids


@pytest.fixture
def data(api):
    return {
        "last": create(api, {"resourceType": "Patient", "birthDate": "9999-12-31"}),
        "first": create(api, {"resourceType": "Patient", "birthDate": "0001-01-01"}),
        "now": create(api, {"resourceType": "Patient", "birthDate": "1944-05-01"}),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("birthdate=9999-12-31", {"last"}),
        ("birthdate=9999", {"last"}),
        ("birthdate=9999-12-31T23:59:59Z", set()),  # a second of a day: the day is not in it
        ("birthdate=ge9999-12-31", {"last"}),
        ("birthdate=gt9999-12-31", set()),
        ("birthdate=sa9999-12-30", {"last"}),
        ("birthdate=lt9999-12-31", {"first", "now"}),
        ("birthdate=ap9999-12-31", {"last"}),
        ("birthdate=0001-01-01", {"first"}),
        ("birthdate=lt0001-01-01", set()),
        ("birthdate=eb0001-01-01", set()),
        ("birthdate=le0001-01-01", {"first"}),
        ("birthdate=gt0001-01-01", {"last", "now"}),
        ("birthdate=ap0001-01-01", {"first"}),
        ("birthdate=0001-01-01T00:00:00%2B14:00", set()),  # before the first instant there is
        ("birthdate=ne9999-12-31", {"first", "now"}),
    ],
)
def test_the_ends_of_the_calendar(api, data, query, expected):
    assert ids(api, f"Patient?{query}") == {data[k] for k in expected}


def test_last_updated_past_the_end_finds_nothing(api, data):
    assert ids(api, "Patient?_lastUpdated=gt9999-12-31T23:59:59Z") == set()
    assert ids(api, "Patient?_lastUpdated=lt0001-01-01") == set()
    assert ids(api, "Patient?_lastUpdated=ap9999") == set()
