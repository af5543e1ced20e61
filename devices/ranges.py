"""What each vital value means: ``Observation.interpretation`` and ``referenceRange``.

Every vital-sign value the ingest stores says whether it is normal, low or high, and which
thresholds said so (../shared/docs/clinical-reference.md, "How results are written in FHIR";
hl7.org/fhir/R4B/observation-definitions.html#Observation.interpretation and
#Observation.referenceRange, codes of hl7.org/fhir/R4B/v3/ObservationInterpretation):

- the patient's own alert thresholds where a clinician set them for the vital (the twin's
  settings): below the low one ``L``, above the high one ``H``, else ``N``; the range written
  is those thresholds;
- else, for the vitals NEWS2 scores, the NEWS2 bands (Royal College of Physicians, 2017): the
  band scoring 0 is the normal range (``N``), a band scoring 1 or 2 is ``L`` or ``H``, a band
  scoring 3 is critical, ``LL`` or ``HH``. SpO2 follows the patient's scale (scale 2 and
  supplemental oxygen are the twin's settings too; an unknown oxygen is scored as air, as the
  NEWS2 score does). Two ranges are written: the normal range (type ``normal``) and the range
  outside which a value is critical (its ``text`` says so);
- else the twin's default alert thresholds where it has one (diastolic pressure, glucose);
- else nothing (weight, height, steps, HRV).

Device events are interpreted too: a fall is ``AA`` (critical abnormal), an irregular rhythm
``A``; a battery level is not interpreted.

The band edges are those of ``twins.news2`` (a value scores what the twin scores it:
``tests/test_device_interpretation.py`` checks every edge against it). The devices app does not
import the twins app: the twins app registers, in its ``ready``, the function that reads its
settings (``register_settings``), and the ingest asks it once per patient per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from .mapping import UCUM

INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
DISPLAY = {
    "N": "Normal",
    "L": "Low",
    "H": "High",
    "LL": "Critical low",
    "HH": "Critical high",
    "A": "Abnormal",
    "AA": "Critical abnormal",
}
EVENT_CODES = {"fall": "AA", "irregular_rhythm": "A"}
NORMAL = {"coding": [{"system": MEANING, "code": "normal", "display": "Normal Range"}]}

Limit = float | int | None


@dataclass(frozen=True)
class Bands:
    """One NEWS2 parameter: ``steps`` are (inclusive upper edge, code) in ascending order, the
    last with no edge; ``normal`` and ``safe`` are the (low, high) of the score-0 band and of
    the bands scoring less than 3, as the clinical reference tables them."""

    name: str
    steps: tuple[tuple[float | None, str], ...]
    normal: tuple[Limit, Limit]
    safe: tuple[Limit, Limit]

    def code(self, value: float) -> str:
        for edge, code in self.steps:
            if edge is None or value <= edge:
                return code
        raise AssertionError("the last step has no edge")


PULSE = Bands(
    "NEWS2 pulse",
    ((40, "LL"), (50, "L"), (90, "N"), (130, "H"), (None, "HH")),
    (51, 90),
    (41, 130),
)
RESPIRATION = Bands(
    "NEWS2 respiration rate",
    ((8, "LL"), (11, "L"), (20, "N"), (24, "H"), (None, "HH")),
    (12, 20),
    (9, 24),
)
SYSTOLIC = Bands(
    "NEWS2 systolic blood pressure",
    ((90, "LL"), (110, "L"), (219, "N"), (None, "HH")),
    (111, 219),
    (91, 219),
)
# Temperature: no band scores 3 above normal (39.1 °C and over scores 2).
TEMPERATURE = Bands(
    "NEWS2 temperature",
    ((35.0, "LL"), (36.0, "L"), (38.0, "N"), (None, "H")),
    (36.1, 38.0),
    (35.1, None),
)
SPO2_SCALE_1 = Bands(
    "NEWS2 SpO2 scale 1", ((91, "LL"), (95, "L"), (None, "N")), (96, None), (92, None)
)
SPO2_SCALE_2_AIR = Bands(
    "NEWS2 SpO2 scale 2, on air", ((83, "LL"), (87, "L"), (None, "N")), (88, None), (84, None)
)
SPO2_SCALE_2_OXYGEN = Bands(
    "NEWS2 SpO2 scale 2, on oxygen",
    ((83, "LL"), (87, "L"), (92, "N"), (96, "H"), (None, "HH")),
    (88, 92),
    (84, 96),
)
NEWS2_BANDS: dict[str, Bands] = {
    "heart_rate": PULSE,
    "respiratory_rate": RESPIRATION,
    "systolic": SYSTOLIC,
    "body_temperature": TEMPERATURE,
}
# The vital a reading type's value (or a blood-pressure component) is, as the twin names it.
UNITS = {
    "heart_rate": ("/min", "beats/minute"),
    "respiratory_rate": ("/min", "breaths/minute"),
    "oxygen_saturation": ("%", "%"),
    "body_temperature": ("Cel", "C"),
    "systolic": ("mm[Hg]", "mmHg"),
    "diastolic": ("mm[Hg]", "mmHg"),
    "blood_glucose": ("mg/dL", "mg/dL"),
    "body_weight": ("kg", "kg"),
    "body_height": ("cm", "cm"),
    "steps": ("{steps}", "steps"),
    "hrv_sdnn": ("ms", "ms"),
}


@dataclass(frozen=True)
class PatientSettings:
    """What the twin knows of a patient that changes how a value reads.

    ``thresholds``: the alert thresholds (low, high) in force per vital (defaults included);
    ``overridden``: the vitals whose thresholds a clinician set for this patient.
    """

    scale: int = 1
    on_oxygen: bool | None = None
    thresholds: dict[str, tuple[Limit, Limit]] = field(default_factory=dict)
    overridden: frozenset[str] = frozenset()

    def key(self) -> tuple:
        return (
            self.scale,
            self.on_oxygen,
            tuple(sorted(self.thresholds.items())),
            tuple(sorted(self.overridden)),
        )


DEFAULT = PatientSettings()
SettingsSource = Callable[[Iterable[str]], dict[str, PatientSettings]]
_source: list[SettingsSource] = []


def register_settings(source: SettingsSource) -> None:
    """Where patients' settings come from (the twins app registers its reader in ``ready``):
    ``source(patient_ids)`` answers a ``PatientSettings`` per id it knows."""
    _source[:] = [source]


def settings_for(patient_ids: Iterable[str]) -> dict[str, PatientSettings]:
    ids = list(patient_ids)
    found = _source[0](ids) if _source and ids else {}
    return {pid: found.get(pid, DEFAULT) for pid in ids}


def _quantity(value: Limit, vital: str) -> dict[str, Any]:
    code, unit = UNITS[vital]
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if number == number.to_integral_value():
        number = Decimal(int(number))
    return {"value": number, "unit": unit, "system": UCUM, "code": code}


def _range(low: Limit, high: Limit, vital: str, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if low is not None:
        out["low"] = _quantity(low, vital)
    if high is not None:
        out["high"] = _quantity(high, vital)
    return {**out, **more}


@cache
def interpretation(code: str) -> list[dict[str, Any]]:
    """The ``interpretation`` element for a code; shared, never to be changed in place."""
    return [{"coding": [{"system": INTERPRETATION, "code": code, "display": DISPLAY[code]}]}]


class Judge:
    """How one vital reads for one patient: ``judge(value)`` is (interpretation, referenceRange)
    of a value, both shared between the values it judges (never to be changed in place)."""

    def __init__(self, vital: str, settings: PatientSettings) -> None:
        self.vital = vital
        self.bands: Bands | None = None
        self.low: Limit = None
        self.high: Limit = None
        self.reference: list[dict[str, Any]] = []
        bands = NEWS2_BANDS.get(vital)
        if vital == "oxygen_saturation":
            bands = (
                SPO2_SCALE_1
                if settings.scale != 2
                else (SPO2_SCALE_2_OXYGEN if settings.on_oxygen else SPO2_SCALE_2_AIR)
            )
        threshold = settings.thresholds.get(vital)
        if threshold is not None and (vital in settings.overridden or bands is None):
            self.low, self.high = threshold
            if self.low is None and self.high is None:
                return
            whose = "set for this patient" if vital in settings.overridden else "(default)"
            self.reference = [
                _range(
                    self.low,
                    self.high,
                    vital,
                    type=NORMAL,
                    text=f"Alert thresholds {whose}",
                )
            ]
        elif bands is not None:
            self.bands = bands
            self.reference = [
                _range(
                    *bands.normal,
                    vital,
                    type=NORMAL,
                    text=f"{bands.name} scores 0",
                ),
                _range(
                    *bands.safe,
                    vital,
                    text=f"{bands.name} scores below 3; critical outside",
                ),
            ]

    def __call__(self, value: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        if not self.reference:
            return None
        if self.bands is not None:
            code = self.bands.code(value)
        elif self.low is not None and value < self.low:
            code = "L"
        elif self.high is not None and value > self.high:
            code = "H"
        else:
            code = "N"
        return interpretation(code), self.reference


class Ranges:
    """The judges of one patient's vitals, made once per patient per batch."""

    def __init__(self, settings: PatientSettings = DEFAULT) -> None:
        self.settings = settings
        self._judges: dict[str, Judge] = {}

    def judge(self, vital: str) -> Judge:
        judge = self._judges.get(vital)
        if judge is None:
            judge = self._judges[vital] = _judge(vital, self.settings)
        return judge


@cache
def _judge_cached(vital: str, key: tuple) -> Judge:
    scale, on_oxygen, thresholds, overridden = key
    return Judge(vital, PatientSettings(scale, on_oxygen, dict(thresholds), frozenset(overridden)))


def _judge(vital: str, settings: PatientSettings) -> Judge:
    """Judges are kept per (vital, settings): most patients share the defaults, so the ranges
    of a batch are built once in the process, not once per reading."""
    if _judge_cached.cache_info().currsize > 10_000:
        _judge_cached.cache_clear()
    return _judge_cached(vital, settings.key())
