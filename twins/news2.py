"""NEWS2, the Royal College of Physicians' National Early Warning Score 2 (2017).

The parameter tables, aggregate bands and monitoring frequencies are those of
../shared/docs/clinical-reference.md. Scale 2 for SpO2 is only for patients with confirmed
hypercapnic respiratory failure, and supplemental oxygen and consciousness come from a
clinician: wearables rarely report them. A score computed without an input says which
inputs were missing or stale, assumed (e.g. "alert", "on air") or absent, and is marked
partial: it never assumes silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SNOMED = "http://snomed.info/sct"
NEWS2_CODE = ("1287358002", "National Early Warning Score (assessment scale)")
PARAMETERS = (
    "respiratory_rate",
    "oxygen_saturation",
    "supplemental_oxygen",
    "systolic",
    "pulse",
    "consciousness",
    "temperature",
)


def respiration(rate: float) -> int:
    if rate <= 8:
        return 3
    if rate <= 11:
        return 1
    if rate <= 20:
        return 0
    if rate <= 24:
        return 2
    return 3


def spo2_scale1(spo2: float) -> int:
    if spo2 <= 91:
        return 3
    if spo2 <= 93:
        return 2
    if spo2 <= 95:
        return 1
    return 0


def spo2_scale2(spo2: float, on_oxygen: bool) -> int:
    """Scale 2: 88–92 % scores 0, and so does ≥ 93 % on air; on oxygen high SpO2 scores."""
    if spo2 <= 83:
        return 3
    if spo2 <= 85:
        return 2
    if spo2 <= 87:
        return 1
    if spo2 <= 92 or not on_oxygen:
        return 0
    if spo2 <= 94:
        return 1
    if spo2 <= 96:
        return 2
    return 3


def air_or_oxygen(on_oxygen: bool) -> int:
    return 2 if on_oxygen else 0


def systolic(pressure: float) -> int:
    if pressure <= 90:
        return 3
    if pressure <= 100:
        return 2
    if pressure <= 110:
        return 1
    if pressure <= 219:
        return 0
    return 3


def pulse(rate: float) -> int:
    if rate <= 40:
        return 3
    if rate <= 50:
        return 1
    if rate <= 90:
        return 0
    if rate <= 110:
        return 1
    if rate <= 130:
        return 2
    return 3


def consciousness(level: str) -> int:
    """ACVPU: alert scores 0; new confusion, voice, pain, unresponsive score 3."""
    return 0 if level == "alert" else 3


def temperature(celsius: float) -> int:
    # Temperatures are recorded to one decimal: 35.0 and below score 3, 35.1–36.0 score 1, …
    t = round(celsius, 1)
    if t <= 35.0:
        return 3
    if t <= 36.0:
        return 1
    if t <= 38.0:
        return 0
    if t <= 39.0:
        return 1
    return 2


@dataclass
class Score:
    total: int
    components: dict[str, int]
    band: str  # low, low-medium, medium, high
    response: str
    monitoring: str
    missing: list[str] = field(default_factory=list)  # inputs with no usable value
    assumed: list[str] = field(default_factory=list)  # inputs taken as a default

    @property
    def partial(self) -> bool:
        return bool(self.missing or self.assumed)

    @property
    def colour(self) -> str:
        return {"low": "green", "low-medium": "yellow", "medium": "orange", "high": "red"}[
            self.band
        ]


def band(total: int, components: dict[str, int]) -> tuple[str, str, str]:
    """(band, clinical response, monitoring frequency) for an aggregate score."""
    if total >= 7:
        return "high", "emergency response", "continuous monitoring of vital signs"
    if total >= 5:
        return "medium", "urgent response", "at least hourly"
    if any(v == 3 for v in components.values()):
        return "low-medium", "urgent ward-based response", "at least hourly"
    if total >= 1:
        return "low", "ward-based response", "at least 4-6 hourly"
    return "low", "ward-based response", "at least 12-hourly"


def score(
    *,
    respiratory_rate: float | None,
    oxygen_saturation: float | None,
    systolic_bp: float | None,
    pulse_rate: float | None,
    temperature_c: float | None,
    on_oxygen: bool | None = None,
    consciousness_level: str | None = None,
    scale: int = 1,
) -> Score:
    """NEWS2 of the inputs given; a None input scores 0 and is listed as missing (or, for
    oxygen and consciousness, as assumed to be "air" and "alert")."""
    components: dict[str, int] = {}
    missing: list[str] = []
    assumed: list[str] = []
    oxygen = bool(on_oxygen)
    if on_oxygen is None:
        assumed.append("supplemental_oxygen")
    level = consciousness_level or "alert"
    if consciousness_level is None:
        assumed.append("consciousness")
    inputs = {
        "respiratory_rate": (respiratory_rate, respiration),
        "systolic": (systolic_bp, systolic),
        "pulse": (pulse_rate, pulse),
        "temperature": (temperature_c, temperature),
    }
    for name, (value, fn) in inputs.items():
        if value is None:
            missing.append(name)
            components[name] = 0
        else:
            components[name] = fn(value)
    if oxygen_saturation is None:
        missing.append("oxygen_saturation")
        components["oxygen_saturation"] = 0
    elif scale == 2:
        components["oxygen_saturation"] = spo2_scale2(oxygen_saturation, oxygen)
    else:
        components["oxygen_saturation"] = spo2_scale1(oxygen_saturation)
    components["supplemental_oxygen"] = air_or_oxygen(oxygen)
    components["consciousness"] = consciousness(level)
    total = sum(components.values())
    b, response, monitoring = band(total, components)
    return Score(total, components, b, response, monitoring, missing, assumed)
