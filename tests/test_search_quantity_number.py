"""quantity and number search (hl7.org/fhir/R4B/search.html#quantity, #number, #prefix).

A number's text gives its precision: ``eq100`` means [99.5, 100.5), ``eq100.00`` means
[99.995, 100.005), and ``ne`` is the complement of that range; ``gt lt ge le sa eb`` compare
with the exact value. A quantity is ``[prefix]number|system|code``: with the UCUM system the
comparison is made in canonical units (``70|…|kg`` finds ``154.3 [lb_av]``), with an empty
system the code or the human unit must be the one given, without a unit any unit matches.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

import pytest

from .search_support import UCUM, found, observation, put, quantity, status

# Values exactly on the edges of the implicit ranges of 100 and 100.00 (a unit that is not in
# the conversion table, so that the values are compared as given).
PRECISION = {
    "a85": "85",
    "a99.4": "99.4",
    "a99.5": "99.5",
    "a99.994": "99.994",
    "a99.995": "99.995",
    "a100": "100",
    "a100.004": "100.004",
    "a100.005": "100.005",
    "a100.49": "100.49",
    "a100.5": "100.5",
    "a111": "111",
}


@pytest.fixture
def precision(api):
    for oid, text in PRECISION.items():
        put(api, observation(oid, valueQuantity=quantity(Decimal(text), "mmol/L")))
    put(api, observation("no-value"))
    return api


def test_number_precision_and_prefixes(precision):
    cases = {
        "100": {"a99.5", "a99.994", "a99.995", "a100", "a100.004", "a100.005", "a100.49"},
        "eq100": {"a99.5", "a99.994", "a99.995", "a100", "a100.004", "a100.005", "a100.49"},
        "100.00": {"a99.995", "a100", "a100.004"},
        "100.0": {"a99.994", "a99.995", "a100", "a100.004", "a100.005"},
        "ne100": {"a85", "a99.4", "a100.5", "a111"},
        "ne100.00": set(PRECISION) - {"a99.995", "a100", "a100.004"},
        # the other prefixes ignore the precision: exactly 100
        "gt100": {"a100.004", "a100.005", "a100.49", "a100.5", "a111"},
        "ge100": {"a100", "a100.004", "a100.005", "a100.49", "a100.5", "a111"},
        "lt100": {"a85", "a99.4", "a99.5", "a99.994", "a99.995"},
        "le100": {"a85", "a99.4", "a99.5", "a99.994", "a99.995", "a100"},
        "sa100": {"a100.004", "a100.005", "a100.49", "a100.5", "a111"},
        "eb100": {"a85", "a99.4", "a99.5", "a99.994", "a99.995"},
        # ap: within 10 % of the value
        "ap100": set(PRECISION) - {"a85", "a111"},
        "ap100.00": set(PRECISION) - {"a85", "a111"},
        # OR
        "85,111": {"a85", "a111"},
        # one significant figure: [50, 150) (the specification's table says [95, 105) for
        # 1e2, which is the range of 100 to two figures; we follow its rule, not that slip)
        "1e2": set(PRECISION),
    }
    got = {}
    for value in cases:
        got[value] = found(precision, f"Observation?value-quantity={quote(value)}")
    assert got == cases
    # the same through the unit: mmol/L is not converted, so system and code must match
    assert found(precision, f"Observation?value-quantity=100.00|{UCUM}|mmol/L") == cases["100.00"]
    assert found(precision, "Observation?value-quantity=100.00||mmol/L") == cases["100.00"]
    assert found(precision, f"Observation?value-quantity=100|{UCUM}|mg") == set()
    assert found(precision, "Observation?value-quantity=100|http://example.org|mmol/L") == set()


def test_and_of_two_prefixes_is_a_range(precision):
    query = "Observation?value-quantity=gt99.9&value-quantity=lt100.1"
    assert found(precision, query) == {"a99.994", "a99.995", "a100", "a100.004", "a100.005"}


def test_missing(precision):
    assert found(precision, "Observation?value-quantity:missing=true") == {"no-value"}
    assert found(precision, "Observation?value-quantity:missing=false") == set(PRECISION)


@pytest.fixture
def units(api):
    def obs(oid, **q):
        put(api, observation(oid, valueQuantity=q))

    obs("mg", value=5.4, system=UCUM, code="mg", unit="mg")
    obs("g", value=Decimal("0.0054"), system=UCUM, code="g", unit="g")
    obs("unit-only", value=5.4, unit="mg")  # no system, no code: the human unit
    obs("other-system", value=5.4, system="http://example.org/units", code="mg")
    obs("mg-high", value=5.45, system=UCUM, code="mg")  # just outside [5.35, 5.45)
    obs("mg-low", value=5.35, system=UCUM, code="mg")  # just inside
    # weights
    obs("kg", value=70, system=UCUM, code="kg", unit="kg")
    obs("lb", value=154.3, system=UCUM, code="[lb_av]", unit="lbs")  # 69.99 kg
    obs("g-heavy", value=70500, system=UCUM, code="g")  # 70.5 kg: outside [69.5, 70.5)
    obs("lb-heavy", value=160, system=UCUM, code="[lb_av]")  # 72.6 kg
    # temperatures
    obs("cel", value=37, system=UCUM, code="Cel", unit="°C")
    obs("degf", value=98.6, system=UCUM, code="[degF]", unit="°F")  # 37.0 °C
    obs("fever", value=38.5, system=UCUM, code="Cel")
    obs("cold", value=10, system=UCUM, code="Cel")
    return api


MILLIGRAMS = {"mg", "g", "mg-high", "mg-low"}  # UCUM masses of a few mg
UNIT_CASES = {
    # UCUM: compared in canonical units, so 0.0054 g is 5.4 mg
    f"5.4|{UCUM}|mg": {"mg", "g", "mg-low"},
    f"5.40e-3|{UCUM}|g": {"mg", "g"},
    f"0.0054|{UCUM}|g": {"mg", "g", "mg-low"},
    # no system: the code or the human unit is "mg", whatever the system
    "5.4||mg": {"mg", "unit-only", "other-system", "mg-low"},
    "5.4|http://example.org/units|mg": {"other-system"},
    # no unit: any unit
    "5.4": {"mg", "unit-only", "other-system", "mg-low"},
    # every mass is comparable: 70 kg is more than 5.4 mg
    f"gt5.4|{UCUM}|mg": {"mg-high", "kg", "lb", "g-heavy", "lb-heavy"},
    f"le5.4|{UCUM}|mg": {"mg", "g", "mg-low"},
    f"70|{UCUM}|kg": {"kg", "lb"},
    f"70000|{UCUM}|g": {"kg"},  # [69999.5, 70000.5) g: 154.3 lb is 69989 g
    f"gt70|{UCUM}|kg": {"g-heavy", "lb-heavy"},
    f"ge70|{UCUM}|kg": {"kg", "g-heavy", "lb-heavy"},
    f"lt155|{UCUM}|[lb_av]": {"kg", "lb"} | MILLIGRAMS,
    f"eb70|{UCUM}|kg": {"lb"} | MILLIGRAMS,
    f"sa70|{UCUM}|kg": {"g-heavy", "lb-heavy"},
    f"ne70|{UCUM}|kg": {"g-heavy", "lb-heavy"} | MILLIGRAMS,
    # temperatures: offsets, not only factors
    f"98.6|{UCUM}|[degF]": {"cel", "degf"},
    f"37|{UCUM}|Cel": {"cel", "degf"},
    f"gt100|{UCUM}|[degF]": {"fever"},
    # ap: 10 % of the value as given (3.7 °C), not of its canonical value in kelvin
    f"ap37|{UCUM}|Cel": {"cel", "degf", "fever"},
    f"ap100|{UCUM}|[degF]": {"cel", "degf", "fever"},
    f"ap70|{UCUM}|kg": {"kg", "lb", "g-heavy", "lb-heavy"},
    f"ap5|{UCUM}|mg": {"mg", "g", "mg-high", "mg-low"},
    # OR across units
    f"70|{UCUM}|kg,37|{UCUM}|Cel": {"kg", "lb", "cel", "degf"},
}


def test_units(units):
    got = {
        value: found(units, f"Observation?value-quantity={quote(value)}") for value in UNIT_CASES
    }
    assert got == UNIT_CASES


@pytest.mark.parametrize(
    "value",
    ["abc", f"5.4|{UCUM}", "gt", "5.4.1||mg", "NaN", "Infinity||mg", "|x|y"],
)
def test_invalid_quantities_are_400(api, value):
    response = api.fhir("GET", f"/fhir/Observation?value-quantity={quote(value)}")
    assert response.status_code == 400, value
    assert response.json_body["resourceType"] == "OperationOutcome"


def risk(rid: str, *probabilities) -> dict:
    resource = {
        "resourceType": "RiskAssessment",
        "id": rid,
        "status": "final",
        "subject": {"reference": "Patient/p"},
    }
    if probabilities:
        resource["prediction"] = [
            {"probabilityDecimal": p} if not isinstance(p, dict) else {"probabilityRange": p}
            for p in probabilities
        ]
    return resource


@pytest.fixture
def risks(api):
    put(api, risk("r0.1", Decimal("0.1")))
    put(api, risk("r0.25", Decimal("0.25")))
    put(api, risk("r0.5", Decimal("0.5")))
    put(api, risk("r0.8", Decimal("0.8")))
    put(api, risk("range", {"low": {"value": 0.2}, "high": {"value": 0.6}}))
    put(api, risk("none"))
    put(api, risk("two", Decimal("0.05"), Decimal("0.9")))
    return api


NUMBER_CASES = {
    "0.5": {"r0.5"},
    "0.50": {"r0.5"},
    "0.3": {"r0.25"},  # [0.25, 0.35)
    "0.2": set(),  # [0.15, 0.25): 0.25 is the open end
    "1e-1": {"r0.1", "two"},  # [0.05, 0.15)
    "gt0.5": {"r0.8", "two"},
    "ge0.5": {"r0.5", "r0.8", "two"},
    "lt0.25": {"r0.1", "two"},
    "le0.25": {"r0.1", "r0.25", "two"},
    "sa0.5": {"r0.8", "two"},
    "eb0.25": {"r0.1", "two"},
    # ne: some prediction is outside [0.45, 0.55)
    "ne0.5": {"r0.1", "r0.25", "r0.8", "two"},
    "ap0.5": {"r0.5"},  # [0.45, 0.55]
    "ap0.8": {"r0.8"},  # [0.72, 0.88]
    "0.1,0.8": {"r0.1", "r0.8", "two"},  # 0.05 is in [0.05, 0.15)
}


def test_number_parameter(risks):
    got = {value: found(risks, f"RiskAssessment?probability={value}") for value in NUMBER_CASES}
    assert got == NUMBER_CASES
    assert found(risks, "RiskAssessment?probability:missing=true") == {"range", "none"}
    # each parameter may be met by a different prediction of the same resource ("two")
    and_query = "RiskAssessment?probability=gt0.2&probability=lt0.6"
    assert found(risks, and_query) == {"r0.25", "r0.5", "two"}
    for bad in ("abc", "gt", "NaN", "0.5|x|y", "0.5.5"):
        assert status(risks, f"RiskAssessment?probability={quote(bad)}") == 400, bad


def test_integer_number_parameter(api):
    for sid, start in (("s99", 99), ("s100", 100), ("s101", 101)):
        put(
            api,
            {
                "resourceType": "MolecularSequence",
                "id": sid,
                "coordinateSystem": 0,
                "referenceSeq": {"windowStart": start, "windowEnd": start + 50},
            },
        )
    assert found(api, "MolecularSequence?window-start=100") == {"s100"}
    assert found(api, "MolecularSequence?window-start=gt100") == {"s101"}
    assert found(api, "MolecularSequence?window-start=le100") == {"s99", "s100"}
    assert found(api, "MolecularSequence?window-end=ge150") == {"s100", "s101"}
    assert found(api, "MolecularSequence?window-start=1e2") == {"s99", "s100", "s101"}
