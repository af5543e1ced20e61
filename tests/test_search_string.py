"""string search (hl7.org/fhir/R4B/search.html#string): starts-with ignoring case and accents by
default, :exact, :contains, every part of a HumanName and an Address, :missing."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from .search_helpers import STRICT, create, ids, observation, search


def q(text: str) -> str:
    """Percent-encode a search value as a client would (accents, spaces, commas stay escaped)."""
    return quote(text, safe="\\")


@pytest.fixture
def data(api):
    d: dict[str, str] = {}
    d["mueller"] = create(
        api,
        {
            "resourceType": "Patient",
            "name": [{"use": "official", "family": "Müller", "given": ["Jürgen", "Klaus"]}],
            "address": [
                {
                    "line": ["Rua Augusta 1500", "Apto 12"],
                    "city": "São Paulo",
                    "state": "SP",
                    "postalCode": "01304-001",
                    "country": "Brasil",
                }
            ],
        },
    )
    d["muller"] = create(
        api,
        {
            "resourceType": "Patient",
            "name": [{"family": "Muller", "given": ["Anna"]}],
            "address": [{"city": "Saint Paul", "state": "MN", "postalCode": "55101"}],
        },
    )
    d["mullins"] = create(api, {"resourceType": "Patient", "name": [{"family": "Mullins"}]})
    d["chalmers"] = create(
        api,
        {
            "resourceType": "Patient",
            "name": [
                {
                    "use": "official",
                    "text": "Dr. Peter James Chalmers Jr.",
                    "family": "Chalmers",
                    "given": ["Peter", "James"],
                    "prefix": ["Dr."],
                    "suffix": ["Jr."],
                },
                {"use": "usual", "given": ["Jim"]},
            ],
            "address": [{"text": "534 Erewhon St, PleasantVille, Vic, 3999"}],
        },
    )
    d["cruz"] = create(
        api, {"resourceType": "Patient", "name": [{"family": "de la Cruz", "given": ["María"]}]}
    )
    # No name and no address at all.
    d["anonymous"] = create(api, {"resourceType": "Patient", "gender": "unknown"})
    d["org"] = create(
        api,
        {
            "resourceType": "Organization",
            "name": "Smith, Jones & Co",
            "alias": ["SJC Clinic"],
            "address": [{"city": "Zürich", "country": "CH"}],
        },
    )
    d["org2"] = create(api, {"resourceType": "Organization", "name": "Smithfield Hospital"})
    d["pract"] = create(
        api,
        {
            "resourceType": "Practitioner",
            "name": [{"family": "Ödegård", "given": ["Åse"], "prefix": ["Dr"]}],
        },
    )
    return d


def test_default_is_starts_with_ignoring_case_and_accents(api, data):
    assert ids(api, "Patient?name=muller") == {data["mueller"], data["muller"]}
    assert ids(api, f"Patient?name={q('MÜLLER')}") == {data["mueller"], data["muller"]}
    assert ids(api, f"Patient?family={q('mül')}") == {
        data["mueller"],
        data["muller"],
        data["mullins"],
    }
    assert ids(api, "Patient?given=jurg") == {data["mueller"]}
    assert ids(api, "Practitioner?name=odegard") == {data["pract"]}
    assert ids(api, "Practitioner?given=ase") == {data["pract"]}


def test_starts_with_is_not_contains(api, data):
    assert ids(api, "Patient?family=lmers") == set()
    assert ids(api, "Patient?family=chalmersx") == set()


def test_contains(api, data):
    assert ids(api, "Patient?family:contains=lmer") == {data["chalmers"]}
    assert ids(api, "Patient?family:contains=ULL") == {
        data["mueller"],
        data["muller"],
        data["mullins"],
    }
    assert ids(api, f"Patient?name:contains={q('la cr')}") == {data["cruz"]}


def test_exact_is_case_and_accent_sensitive(api, data):
    assert ids(api, f"Patient?family:exact={q('Müller')}") == {data["mueller"]}
    assert ids(api, "Patient?family:exact=Muller") == {data["muller"]}
    assert ids(api, f"Patient?family:exact={q('müller')}") == set()
    assert ids(api, "Patient?family:exact=Mull") == set()
    assert ids(api, f"Patient?family:exact={q('de la Cruz')}") == {data["cruz"]}


def test_name_searches_every_part_of_a_humanname(api, data):
    chalmers = {data["chalmers"]}
    assert ids(api, "Patient?name=peter") == chalmers  # given
    assert ids(api, "Patient?name=chalmers") == chalmers  # family
    assert ids(api, "Patient?name=dr.") == chalmers  # prefix
    assert ids(api, "Patient?name=jr") == chalmers  # suffix
    assert ids(api, f"Patient?name={q('Dr. Peter James')}") == chalmers  # text
    assert ids(api, "Patient?name=jim") == chalmers  # a second name
    assert ids(api, "Patient?given=jim") == chalmers
    assert ids(api, "Patient?family=peter") == set()


def test_and_may_match_different_names(api, data):
    assert ids(api, "Patient?family=chalmers&given=jim") == {data["chalmers"]}
    assert ids(api, "Patient?given=peter&given=james") == {data["chalmers"]}
    assert ids(api, "Patient?given=peter&family=muller") == set()


def test_or_with_commas(api, data):
    assert ids(api, "Patient?family=mullins,chalmers") == {data["mullins"], data["chalmers"]}


def test_spaces_inside_a_value(api, data):
    assert ids(api, f"Patient?family={q('de la')}") == {data["cruz"]}
    assert ids(api, f"Patient?family={q('De  La   CRUZ')}") == {data["cruz"]}
    assert ids(api, f"Patient?name={q('maría')}") == {data["cruz"]}
    assert ids(api, "Patient?name=maria") == {data["cruz"]}


def test_escaped_comma_is_part_of_the_value(api, data):
    escaped = q("smith\\, jones")
    assert ids(api, "Organization?name=" + escaped) == {data["org"]}
    assert ids(api, "Organization?name:exact=" + q("Smith\\, Jones & Co")) == {data["org"]}
    # unescaped: "smith" or " jones"
    assert ids(api, f"Organization?name={q('smith, jones')}") == {data["org"], data["org2"]}


def test_organization_name_includes_aliases(api, data):
    assert ids(api, "Organization?name=sjc") == {data["org"]}


def test_address_parts(api, data):
    assert ids(api, "Patient?address=sao") == {data["mueller"]}
    assert ids(api, f"Patient?address={q('rua augusta')}") == {data["mueller"]}
    assert ids(api, "Patient?address=apto") == {data["mueller"]}
    assert ids(api, f"Patient?address-city={q('São Paulo')}") == {data["mueller"]}
    assert ids(api, "Patient?address-city=saint") == {data["muller"]}
    assert ids(api, "Patient?address-state=sp") == {data["mueller"]}
    assert ids(api, "Patient?address-postalcode=01304") == {data["mueller"]}
    assert ids(api, "Patient?address-country=bras") == {data["mueller"]}
    assert ids(api, "Patient?address=534%20erewhon") == {data["chalmers"]}  # Address.text
    assert ids(api, "Organization?address-city=zurich") == {data["org"]}
    # the city parameter does not look at the country
    assert ids(api, "Patient?address-city=brasil") == set()


def test_missing(api, data):
    assert ids(api, "Patient?name:missing=true") == {data["anonymous"]}
    assert ids(api, "Patient?family:missing=true") == {data["anonymous"]}
    assert ids(api, "Patient?address:missing=false") == {
        data["mueller"],
        data["muller"],
        data["chalmers"],
    }


def test_value_string_of_an_observation(api):
    positive = create(api, observation(None, "94500-6", value="Detected (positive)"))
    create(api, observation(None, "94500-6", value="Not detected"))
    assert ids(api, "Observation?value-string=detected") == {positive}
    assert len(ids(api, "Observation?value-string:contains=detected")) == 2


def test_unsupported_string_modifier(api, data):
    response = search(api, "Patient?name:text=peter", **STRICT)
    assert response.status_code == 400
    assert response.json_body["resourceType"] == "OperationOutcome"
    # lenient: ignored, so every patient matches
    assert len(ids(api, "Patient?name:text=peter")) == 6


def test_empty_value_is_ignored(api, data):
    assert len(ids(api, "Patient?name=")) == 6


def test_renamed_patient_is_found_by_the_new_name(api, data):
    body = api.fhir("GET", f"/fhir/Patient/{data['mullins']}").json_body
    body["name"] = [{"family": "Okafor"}]
    assert api.fhir("PUT", f"/fhir/Patient/{data['mullins']}", body).status_code == 200
    assert ids(api, "Patient?family=mullins") == set()
    assert ids(api, "Patient?family=okafor") == {data["mullins"]}
