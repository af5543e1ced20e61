"""UCUM canonical units for quantity search (hl7.org/fhir/R4B/search.html#quantity).

A quantity is indexed with its value converted to a canonical unit so that ``weight=70|…|kg``
finds a weight recorded as ``154.3 [lb_av]``. The table covers the units vital signs and
common labs arrive in (see ../shared/docs/clinical-reference.md); an unknown unit is indexed
as given and found by its own code.
"""

from __future__ import annotations

# code -> (canonical code, factor, offset): canonical = value * factor + offset
CONVERSIONS: dict[str, tuple[str, float, float]] = {
    # mass
    "kg": ("g", 1000.0, 0.0),
    "g": ("g", 1.0, 0.0),
    "mg": ("g", 0.001, 0.0),
    "ug": ("g", 1e-6, 0.0),
    "[lb_av]": ("g", 453.59237, 0.0),
    "[oz_av]": ("g", 28.349523125, 0.0),
    # length
    "m": ("m", 1.0, 0.0),
    "cm": ("m", 0.01, 0.0),
    "mm": ("m", 0.001, 0.0),
    "km": ("m", 1000.0, 0.0),
    "[in_i]": ("m", 0.0254, 0.0),
    "[ft_i]": ("m", 0.3048, 0.0),
    # temperature (to kelvin)
    "Cel": ("K", 1.0, 273.15),
    "K": ("K", 1.0, 0.0),
    "[degF]": ("K", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
    # time
    "s": ("s", 1.0, 0.0),
    "ms": ("s", 0.001, 0.0),
    "min": ("s", 60.0, 0.0),
    "h": ("s", 3600.0, 0.0),
    "d": ("s", 86400.0, 0.0),
    "wk": ("s", 604800.0, 0.0),
    "a": ("s", 31557600.0, 0.0),
    # pressure
    "mm[Hg]": ("Pa", 133.322387415, 0.0),
    "kPa": ("Pa", 1000.0, 0.0),
    "Pa": ("Pa", 1.0, 0.0),
    # rates and fractions
    "/min": ("/s", 1.0 / 60.0, 0.0),
    "{beats}/min": ("/s", 1.0 / 60.0, 0.0),
    "{breaths}/min": ("/s", 1.0 / 60.0, 0.0),
    "/s": ("/s", 1.0, 0.0),
    "%": ("1", 0.01, 0.0),
    "1": ("1", 1.0, 0.0),
    # glucose concentration: mass per volume
    "mg/dL": ("g/L", 0.01, 0.0),
    "g/L": ("g/L", 1.0, 0.0),
    "g/dL": ("g/L", 10.0, 0.0),
    # volume
    "L": ("L", 1.0, 0.0),
    "mL": ("L", 0.001, 0.0),
    "dL": ("L", 0.1, 0.0),
    # area and BMI
    "kg/m2": ("g/m2", 1000.0, 0.0),
}
UCUM = "http://unitsofmeasure.org"


def canonical(value: float, code: str) -> tuple[float, str] | None:
    """(value, unit) in the canonical unit, or None when the unit is not in the table."""
    conversion = CONVERSIONS.get(code)
    if conversion is None:
        return None
    unit, factor, offset = conversion
    return value * factor + offset, unit
