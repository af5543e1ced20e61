"""How each wearable reading type becomes a FHIR R4B Observation.

The table follows ../shared/docs/clinical-reference.md: the vital-signs profile
(hl7.org/fhir/R4B/observation-vitalsigns.html) for LOINC codes, UCUM units and the
``vital-signs`` category, and the HL7 PHD IG (hl7.org/fhir/uv/phd) for the MDC code beside the
LOINC code, the ``phd`` category and the deterministic identifier that makes a resend a
duplicate. Units are converted to the canonical unit, keeping the original in an extension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MDC = "urn:iso:std:iso:11073:10101"
SNOMED = "http://snomed.info/sct"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
EUI64_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
READING_ID_SYSTEM = "urn:clouddth:device-reading"
ORIGINAL_VALUE_URL = "https://clouddth.example/fhir/StructureDefinition/original-quantity"
GATEWAY_URL = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"


@dataclass(frozen=True)
class Unit:
    """A unit a reading may arrive in, and how to reach the canonical unit from it."""

    code: str
    to_canonical: Callable[[float], float] = field(default=lambda v: v)


@dataclass(frozen=True)
class Measure:
    """One reading type: codes, canonical unit, accepted units, the physiologically possible range."""

    type: str
    loinc: str
    display: str
    unit: str  # canonical UCUM code
    unit_display: str
    units: tuple[Unit, ...]
    low: float  # below: physiologically impossible, rejected
    high: float  # above: physiologically impossible, rejected
    mdc: str | None = None
    mdc_display: str | None = None
    extra_loinc: tuple[tuple[str, str], ...] = ()
    category: str = "vital-signs"


def _same(code: str) -> Unit:
    return Unit(code)


MEASURES: dict[str, Measure] = {
    m.type: m
    for m in (
        Measure(
            "heart_rate",
            "8867-4",
            "Heart rate",
            "/min",
            "beats/minute",
            (_same("/min"), _same("{beats}/min"), Unit("bpm")),
            low=1,
            high=350,
            mdc="149530",
            mdc_display="MDC_PULS_OXIM_PULS_RATE",
        ),
        Measure(
            "respiratory_rate",
            "9279-1",
            "Respiratory rate",
            "/min",
            "breaths/minute",
            (_same("/min"), _same("{breaths}/min")),
            low=1,
            high=100,
            mdc="151562",
            mdc_display="MDC_RESP_RATE",
        ),
        Measure(
            "oxygen_saturation",
            "2708-6",
            "Oxygen saturation in Arterial blood",
            "%",
            "%",
            (_same("%"), Unit("1", lambda v: v * 100.0)),  # HealthKit's 0 to 1 fraction
            low=30,
            high=100,
            mdc="150456",
            mdc_display="MDC_PULS_OXIM_SAT_O2",
            extra_loinc=(("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),),
        ),
        Measure(
            "body_temperature",
            "8310-5",
            "Body temperature",
            "Cel",
            "C",
            (
                _same("Cel"),
                Unit("[degF]", lambda v: (v - 32.0) * 5.0 / 9.0),
                Unit("K", lambda v: v - 273.15),
            ),
            low=25,
            high=45,
            mdc="150364",
            mdc_display="MDC_TEMP_BODY",
        ),
        Measure(
            "body_weight",
            "29463-7",
            "Body weight",
            "kg",
            "kg",
            (
                _same("kg"),
                Unit("g", lambda v: v / 1000.0),
                Unit("[lb_av]", lambda v: v * 0.45359237),
            ),
            low=2,
            high=500,
            mdc="188736",
            mdc_display="MDC_MASS_BODY_ACTUAL",
        ),
        Measure(
            "body_height",
            "8302-2",
            "Body height",
            "cm",
            "cm",
            (_same("cm"), Unit("m", lambda v: v * 100.0), Unit("[in_i]", lambda v: v * 2.54)),
            low=30,
            high=260,
            mdc="188740",
            mdc_display="MDC_LEN_BODY_ACTUAL",
        ),
        Measure(
            "blood_glucose",
            "41653-7",
            "Glucose [Mass/volume] in Capillary blood by Glucometer",
            "mg/dL",
            "mg/dL",
            (_same("mg/dL"), Unit("mmol/L", lambda v: v * 18.016)),
            low=10,
            high=1500,
            mdc="160368",
            mdc_display="MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
        ),
        Measure(
            "steps",
            "55423-8",
            "Number of steps in unspecified time Pedometer",
            "{steps}",
            "steps",
            (_same("{steps}"), Unit("1"), Unit("steps")),
            low=0,
            high=200_000,
            category="activity",
        ),
        Measure(
            "hrv_sdnn",
            "80404-7",
            "R-R interval.standard deviation (Heart rate variability)",
            "ms",
            "ms",
            (_same("ms"), Unit("s", lambda v: v * 1000.0)),
            low=1,
            high=1000,
        ),
    )
}

BLOOD_PRESSURE = Measure(
    "blood_pressure",
    "85354-9",
    "Blood pressure panel with all children optional",
    "mm[Hg]",
    "mmHg",
    (_same("mm[Hg]"), Unit("kPa", lambda v: v * 7.50061683)),
    low=20,
    high=320,
    mdc="150020",
    mdc_display="MDC_PRESS_BLD_NONINV",
)
SYSTOLIC = ("8480-6", "Systolic blood pressure", "150021", "MDC_PRESS_BLD_NONINV_SYS")
DIASTOLIC = ("8462-4", "Diastolic blood pressure", "150022", "MDC_PRESS_BLD_NONINV_DIA")


@dataclass(frozen=True)
class Event:
    """A device event: an Observation with a boolean or quantity value, coded in SNOMED or MDC."""

    type: str
    system: str
    code: str
    display: str


EVENTS: dict[str, Event] = {
    "fall": Event("fall", SNOMED, "1912002", "Fall (event)"),
    "irregular_rhythm": Event(
        "irregular_rhythm", SNOMED, "361137007", "Irregular heart beat (finding)"
    ),
    "battery": Event("battery", MDC, "67996", "MDC_ATTR_VAL_BATT_CHARGE"),
}

READING_TYPES = (*MEASURES, "blood_pressure", *EVENTS)
