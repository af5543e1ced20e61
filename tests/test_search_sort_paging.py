"""_sort, _count, _total and paging (hl7.org/fhir/R4B/search.html#sort, #count, #total, #paging).

- ``_sort`` takes any search parameter, several keys by comma, ``-`` for descending; a
  multi-valued element sorts by its lowest value ascending and its highest descending;
  resources without a value come last; ties keep a stable order.
- ``_count`` is capped at ``FHIR_MAX_COUNT``; ``_count=0`` answers the total only.
- the ``self``, ``first``, ``previous`` and ``next`` links page through a snapshot: resources
  created while a client pages do not shift the pages it has not read yet.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

import pytest
from django.test import override_settings

from .search_support import (
    LOINC,
    STRICT,
    entries,
    follow,
    get,
    link,
    link_params,
    observation,
    ordered,
    put,
    quantity,
    status,
)


def coded(oid: str, code: str, date: str | None = None, **more) -> dict:
    obs = observation(oid, code={"coding": [{"system": LOINC, "code": code}]}, **more)
    if date:
        obs["effectiveDateTime"] = date
    return obs


@pytest.fixture
def sortable(api):
    put(api, coded("s1", "A", "2026-03-01", valueQuantity=quantity(5, "mg")))
    put(api, coded("s2", "B", "2026-03-02", valueQuantity=quantity(Decimal("2.5"), "mg")))
    put(api, coded("s3", "A", "2026-03-02T12:00:00Z", valueQuantity=quantity(10, "mg")))
    put(api, coded("s4", "C", "2026-03-03"))
    put(api, coded("s5", "B", None, valueQuantity=quantity(7, "mg")))
    put(api, coded("s6", "C", "2026-03-01T08:00:00Z", valueQuantity=quantity(5, "mg")))
    return api


def sorted_ids(api, query: str) -> list[str]:
    body = get(api, query)
    return ordered(body)


def test_sort_by_date(sortable):
    # ascending by the start of each date's range; s5 has none and comes last
    assert sorted_ids(sortable, "Observation?_sort=date") == ["s1", "s6", "s2", "s3", "s4", "s5"]
    # descending by the end of each range: s3 (12:00 on the 2nd) ends before s2 (all the 2nd)
    assert sorted_ids(sortable, "Observation?_sort=-date") == ["s4", "s2", "s3", "s1", "s6", "s5"]


def test_several_keys(sortable):
    assert sorted_ids(sortable, "Observation?_sort=code,-date") == [
        "s3",  # A, 03-02
        "s1",  # A, 03-01
        "s2",  # B, 03-02
        "s5",  # B, no date
        "s4",  # C, 03-03
        "s6",  # C, 03-01
    ]
    assert sorted_ids(sortable, "Observation?_sort=-code,date") == [
        "s6",
        "s4",
        "s2",
        "s5",
        "s1",
        "s3",
    ]


def test_ties_keep_a_stable_order_across_pages(sortable):
    """Equal keys fall back to a fixed order, so pages never repeat or skip a tie."""
    query = "Observation?_sort=value-quantity&_count=2"
    seen = []
    body = get(sortable, query)
    while True:
        seen += ordered(body)
        nxt = link(body, "next")
        if not nxt:
            break
        body = get(sortable, follow(nxt))
    # s1 and s6 are both 5 mg: written first, s1 comes first; s4 has no value: last
    assert seen == ["s2", "s1", "s6", "s5", "s3", "s4"]
    assert seen == sorted_ids(sortable, "Observation?_sort=value-quantity")


def test_sort_by_quantity_descending_puts_missing_last(sortable):
    assert sorted_ids(sortable, "Observation?_sort=-value-quantity")[0] == "s3"
    assert sorted_ids(sortable, "Observation?_sort=-value-quantity")[-1] == "s4"


def test_sort_by_id_and_last_updated(sortable):
    assert sorted_ids(sortable, "Observation?_sort=_id") == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert sorted_ids(sortable, "Observation?_sort=-_id") == ["s6", "s5", "s4", "s3", "s2", "s1"]
    assert sorted_ids(sortable, "Observation?_sort=_lastUpdated") == [
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
    ]
    put(sortable, coded("s2", "B", "2026-03-02"))  # s2 is now the newest
    assert sorted_ids(sortable, "Observation?_sort=-_lastUpdated")[0] == "s2"


def test_sort_by_string_ignores_case_and_accents_and_puts_missing_last(api):
    for pid, family in (("z", "Zeta"), ("a", "alpha"), ("e", "Émile"), ("n", None), ("b", "Beta")):
        patient = {"resourceType": "Patient", "id": pid}
        if family:
            patient["name"] = [{"family": family}]
        put(api, patient)
    assert sorted_ids(api, "Patient?_sort=family") == ["a", "b", "e", "z", "n"]
    assert sorted_ids(api, "Patient?_sort=-family") == ["z", "e", "b", "a", "n"]


def test_multi_valued_elements_sort_by_lowest_ascending_and_highest_descending(api):
    def patient(pid, *given):
        return {"resourceType": "Patient", "id": pid, "name": [{"given": list(given)}]}

    put(api, patient("am", "Anna", "Maria"))  # lowest a, highest m
    put(api, patient("b", "Bella"))
    put(api, patient("cz", "Carl", "Zed"))  # lowest c, highest z
    assert sorted_ids(api, "Patient?_sort=given") == ["am", "b", "cz"]
    assert sorted_ids(api, "Patient?_sort=-given") == ["cz", "am", "b"]


def test_sort_by_reference_number_and_token(api):
    for rid, subject, probability in (
        ("r1", "Patient/b", "0.5"),
        ("r2", "Patient/a", "0.9"),
        ("r3", "Patient/c", "0.1"),
    ):
        put(
            api,
            {
                "resourceType": "RiskAssessment",
                "id": rid,
                "status": "final" if rid != "r2" else "amended",
                "subject": {"reference": subject},
                "prediction": [{"probabilityDecimal": Decimal(probability)}],
            },
        )
    assert sorted_ids(api, "RiskAssessment?_sort=subject") == ["r2", "r1", "r3"]
    assert sorted_ids(api, "RiskAssessment?_sort=-probability") == ["r2", "r1", "r3"]
    assert sorted_ids(api, "RiskAssessment?_sort=probability") == ["r3", "r1", "r2"]
    assert sorted_ids(api, "RiskAssessment?_sort=status,-probability") == ["r2", "r1", "r3"]


def test_sort_by_an_unknown_parameter(sortable):
    assert status(sortable, "Observation?_sort=colour", **STRICT) == 400
    body = get(sortable, "Observation?_sort=colour,-_id")
    assert ordered(body) == ["s6", "s5", "s4", "s3", "s2", "s1"]  # the known key still applies
    outcome = entries(body, "outcome")
    assert outcome and "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert ("_sort", "-_id") in link_params(link(body, "self"))


def test_sort_is_kept_in_the_links(sortable):
    body = get(sortable, "Observation?_sort=-date,code&_count=2")
    for relation in ("self", "first", "next"):
        assert ("_sort", "-date,code") in link_params(link(body, relation))


# --- paging ---------------------------------------------------------------------------------


def make_patients(api, count: int, prefix: str = "p") -> list[str]:
    ids = [f"{prefix}{i:02d}" for i in range(count)]
    for pid in ids:
        put(api, {"resourceType": "Patient", "id": pid, "gender": "female"})
    return ids


def walk(api, query: str) -> tuple[list[str], list[dict]]:
    """Follow next links from ``query``; the ids in order, and every page's Bundle."""
    pages = [get(api, query)]
    while link(pages[-1], "next"):
        pages.append(get(api, follow(link(pages[-1], "next"))))
        assert len(pages) < 50
    return [i for page in pages for i in ordered(page)], pages


def test_paging_links(api):
    ids = make_patients(api, 7)
    seen, pages = walk(api, "Patient?gender=female&_count=3")
    assert seen == ids
    assert [len(ordered(p)) for p in pages] == [3, 3, 1]
    assert all(p["total"] == 7 for p in pages)
    assert link(pages[0], "previous") is None
    assert link(pages[-1], "next") is None
    # previous goes back one page, first to the first page
    back = get(api, follow(link(pages[2], "previous")))
    assert ordered(back) == ordered(pages[1])
    back = get(api, follow(link(pages[1], "previous")))
    assert ordered(back) == ordered(pages[0])
    assert ordered(get(api, follow(link(pages[2], "first")))) == ordered(pages[0])
    # self reloads the same page
    assert ordered(get(api, follow(link(pages[1], "self")))) == ordered(pages[1])
    for page in pages:
        for relation in ("self", "first"):
            params = link_params(link(page, relation))
            assert ("gender", "female") in params and ("_count", "3") in params
            assert link(page, relation).startswith("http://testserver/fhir/Patient?")


def test_links_keep_values_that_need_escaping(api):
    # The links' query strings are written without urlencode (query.encode_query): a value with
    # reserved, percent, plus, space and non-ASCII characters must come back as it was given.
    family = "Ben & Jerry+ 100% é|$=?#"
    for i in range(5):
        put(api, {"resourceType": "Patient", "id": f"esc{i}", "name": [{"family": family}]})
    put(api, {"resourceType": "Patient", "id": "other", "name": [{"family": "Ben"}]})
    seen, pages = walk(api, f"Patient?name:exact={quote(family)}&_count=2")
    assert sorted(seen) == [f"esc{i}" for i in range(5)]
    for page in pages:
        for relation in ("self", "first"):
            assert ("name:exact", family) in link_params(link(page, relation))


def test_a_page_that_ends_exactly_has_no_next(api):
    make_patients(api, 6)
    _seen, pages = walk(api, "Patient?_count=3")
    assert [len(ordered(p)) for p in pages] == [3, 3]


@pytest.mark.parametrize("sort", ["", "&_sort=-_lastUpdated", "&_sort=-_id", "&_sort=_id"])
def test_pages_stay_put_while_resources_are_created(api, sort):
    """Created after the first page, resources that would sort first (newest, or a higher id)
    or in the middle must not shift the later pages: no duplicate, no skip."""
    ids = make_patients(api, 7, prefix="p")
    first = get(api, f"Patient?gender=female&_count=3{sort}")
    seen = ordered(first)
    # new matching patients: "p99" sorts last by id, "p035" between p03 and p04, "a" first
    for pid in ("a", "p035", "p99"):
        put(api, {"resourceType": "Patient", "id": pid, "gender": "female"})
    body = first
    while link(body, "next"):
        body = get(api, follow(link(body, "next")))
        seen += ordered(body)
        assert body["total"] == 7
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(ids)
    # a new search sees them
    assert get(api, "Patient?gender=female&_count=3")["total"] == 10


def test_count_zero_gives_the_total_only(api):
    make_patients(api, 4)
    body = get(api, "Patient?_count=0")
    assert body["total"] == 4
    assert ordered(body) == []
    assert link(body, "next") is None


def test_count_is_capped_at_the_maximum(api):
    make_patients(api, 7)
    with override_settings(FHIR_MAX_COUNT=5):
        body = get(api, "Patient?_count=100")
        assert len(ordered(body)) == 5
        assert ("_count", "5") in link_params(link(body, "self"))
        seen, pages = walk(api, "Patient?_count=100")
        assert len(seen) == 7 and len(pages) == 2


def test_default_count(api):
    make_patients(api, 4)
    with override_settings(FHIR_DEFAULT_COUNT=3):
        body = get(api, "Patient")
        assert len(ordered(body)) == 3
        assert ("_count", "3") in link_params(link(body, "self"))


@pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
def test_bad_count_is_400(api, value):
    assert status(api, f"Patient?_count={value}") == 400


def test_total(api):
    make_patients(api, 5)
    assert get(api, "Patient?_count=2")["total"] == 5
    assert get(api, "Patient?_count=2&_total=accurate")["total"] == 5
    none = get(api, "Patient?_count=2&_total=none")
    assert "total" not in none
    assert link(none, "next") is not None  # paging does not need the total
    assert ("_total", "none") in link_params(link(none, "next"))
    estimate = get(api, "Patient?_count=2&_total=estimate")
    assert isinstance(estimate.get("total"), int) and estimate["total"] >= 0
    assert status(api, "Patient?_total=some") == 400


def test_offset_past_the_end_is_an_empty_page(api):
    make_patients(api, 3)
    body = get(api, "Patient?_count=2&_offset=10")
    assert ordered(body) == [] and body["total"] == 3
    assert link(body, "next") is None
    assert link(body, "previous") is not None


def test_text_sorts_by_code_point_on_every_database(api):
    """PostgreSQL with an en_US or ICU collation would put ``s-2`` after ``S0`` and ``vanberg``
    before ``van damme`` (it ignores punctuation and case at first); SQLite compares bytes.
    Sorting compares code points on both, so the same search pages the same way."""
    for pid, family in (
        ("s1", "Vanberg"),
        ("sa", "van Damme"),
        ("S0", "Obama"),
        ("s.4", "O'Brien"),
        ("s-2", "Van-Dyke"),
    ):
        put(api, {"resourceType": "Patient", "id": pid, "name": [{"family": family}]})
    assert sorted_ids(api, "Patient?_sort=_id") == ["S0", "s-2", "s.4", "s1", "sa"]
    assert sorted_ids(api, "Patient?_sort=-_id") == ["sa", "s1", "s.4", "s-2", "S0"]
    # normalised: "o'brien" < "obama" < "van damme" < "van-dyke" < "vanberg"
    assert sorted_ids(api, "Patient?_sort=family") == ["s.4", "S0", "sa", "s-2", "s1"]
    assert sorted_ids(api, "Patient?_sort=-family") == ["s1", "s-2", "sa", "S0", "s.4"]


def test_quantities_sort_in_canonical_units(api):
    """154.3 [lb_av] is 69.99 kg: it sorts before 70 kg, not after 82 kg; a unit that does not
    convert sorts by its value as given."""
    put(api, observation("kg70", valueQuantity=quantity(70, "kg")))
    put(api, observation("lb", valueQuantity=quantity(Decimal("154.3"), "[lb_av]")))
    put(api, observation("kg82", valueQuantity=quantity(Decimal("82.25"), "kg")))
    put(api, observation("g", valueQuantity=quantity(75000, "g")))
    assert sorted_ids(api, "Observation?_sort=value-quantity") == ["lb", "kg70", "g", "kg82"]
    assert sorted_ids(api, "Observation?_sort=-value-quantity") == ["kg82", "g", "kg70", "lb"]


def test_pages_stay_put_while_resources_are_updated(api):
    """Updating a resource keeps its place in the default order (and by _id): a page already
    read, or one still to come, neither repeats nor loses it."""
    ids = make_patients(api, 7)
    for sort in ("", "&_sort=_id"):
        first = get(api, f"Patient?gender=female&_count=3{sort}")
        seen = ordered(first)
        put(api, {"resourceType": "Patient", "id": seen[0], "gender": "female", "active": True})
        put(api, {"resourceType": "Patient", "id": "p05", "gender": "female", "active": False})
        body = first
        while link(body, "next"):
            body = get(api, follow(link(body, "next")))
            seen += ordered(body)
        assert seen == ids, sort


def test_spaces_around_sort_keys_are_ignored(sortable):
    assert sorted_ids(sortable, "Observation?_sort=code,%20-date") == [
        "s3",
        "s1",
        "s2",
        "s5",
        "s4",
        "s6",
    ]
