"""The diagnosis rules: plain functions over the twin's state, with a registry.

Each rule declares its inputs (vitals or settings it reads), its output and the FHIR coding of
what it raises, and returns ``Finding``s: one per ongoing problem (``problem`` is the key that
makes a problem one alert however many readings show it). ``twins.alerts`` turns findings into
alerts with hysteresis. Clinical sources: ../shared/docs/clinical-reference.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fhir_api.search.dates import parse_interval

from . import news2 as news2_scores
from .vitals import FRESH_SECONDS, LABELS, UNITS

SNOMED = "http://snomed.info/sct"
LOCAL = "https://clouddth.example/fhir/CodeSystem/twin-rules"

# Default alert thresholds (low, high), overridable per patient (PatientTwin.thresholds).
DEFAULT_THRESHOLDS: dict[str, tuple[float | None, float | None]] = {
    "heart_rate": (40, 130),
    "respiratory_rate": (8, 25),
    "oxygen_saturation": (90, None),
    "body_temperature": (35.0, 39.0),
    "systolic": (90, 200),
    "diastolic": (None, 120),
    "blood_glucose": (70, 300),
}
# Below this distance from the baseline a deviation is noise, whatever the MAD says.
MIN_DEVIATION = {
    "heart_rate": 20,
    "respiratory_rate": 6,
    "oxygen_saturation": 4,
    "body_temperature": 1.0,
    "systolic": 25,
    "diastolic": 15,
    "blood_glucose": 60,
}
EVENT_WINDOW = timedelta(minutes=30)


def threshold_number(value: object) -> float | int | None:
    """A clinician's threshold as a number; anything else (JSON hand-edited into "abc", "120",
    true, a list) counts as not set, as in the readings' interpretation (``devices.ranges``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return value


def threshold_problems(overrides: object) -> list[str]:
    """What is wrong with ``PatientTwin.thresholds`` as a clinician's overrides: each
    ``{vital: {"low": number, "high": number}}`` of a known vital. Empty when it is right."""
    if not isinstance(overrides, dict):
        return ['Thresholds are an object such as {"heart_rate": {"high": 120}}.']
    problems = []
    for vital, override in overrides.items():
        if vital not in DEFAULT_THRESHOLDS:
            problems.append(f"{vital!r} is not a vital with thresholds.")
            continue
        if not isinstance(override, dict):
            problems.append(f'{vital}: give {{"low": number, "high": number}}, not {override!r}.')
            continue
        for side, value in override.items():
            if side not in ("low", "high"):
                problems.append(f"{vital}: {side!r} is neither low nor high.")
            elif threshold_number(value) is None:
                problems.append(f"{vital} {side}: {value!r} is not a number.")
    return problems


def thresholds_in_force(overrides: object) -> dict[str, tuple[float | None, float | None]]:
    """(low, high) per vital: the clinician's overrides where they are numbers, else the
    defaults. ``overrides`` is ``PatientTwin.thresholds`` as stored, whatever its shape."""
    given = overrides if isinstance(overrides, dict) else {}
    out = {}
    for vital, (low, high) in DEFAULT_THRESHOLDS.items():
        override = given.get(vital) if isinstance(given.get(vital), dict) else {}
        set_low, set_high = (
            threshold_number(override.get("low")),
            threshold_number(override.get("high")),
        )
        out[vital] = (low if set_low is None else set_low, high if set_high is None else set_high)
    return out


@dataclass(frozen=True)
class Finding:
    problem: str
    rule: str
    severity: int  # 1 low, 2 medium, 3 high
    summary: str
    evidence: tuple[str, ...] = ()
    coding: tuple[str, str, str] = (LOCAL, "twin-alert", "Twin alert")


@dataclass
class Context:
    """What rules read: the twin's state and settings at the twin's clock."""

    state: dict[str, Any]
    now: datetime
    scale: int = 1
    on_oxygen: bool | None = None
    consciousness: str | None = None
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    hourly: Callable[[str, int], list[float]] = lambda vital, hours: []
    news2: news2_scores.Score | None = None

    def latest(self, vital: str, fresh: bool = True) -> float | None:
        item = self.state.get("latest", {}).get(vital)
        if item is None:
            return None
        if fresh and vital in FRESH_SECONDS:
            age = (self.now - parse_interval(item["time"]).low).total_seconds()
            if age > FRESH_SECONDS[vital]:
                return None
        return item["value"]

    def evidence(self, *vitals: str) -> tuple[str, ...]:
        latest = self.state.get("latest", {})
        return tuple(latest[v]["observation"] for v in vitals if v in latest)


@dataclass(frozen=True)
class Rule:
    name: str
    inputs: tuple[str, ...]
    output: str
    coding: tuple[str, str, str]
    evaluate: Callable[[Context], list[Finding]]


REGISTRY: dict[str, Rule] = {}


def rule(name: str, inputs: tuple[str, ...], output: str, coding: tuple[str, str, str]):
    def register(fn: Callable[[Context], list[Finding]]) -> Callable[[Context], list[Finding]]:
        REGISTRY[name] = Rule(name, inputs, output, coding, fn)
        return fn

    return register


NEWS2_CODING = (SNOMED, news2_scores.NEWS2_CODE[0], news2_scores.NEWS2_CODE[1])


def compute_news2(ctx: Context) -> news2_scores.Score:
    return news2_scores.score(
        respiratory_rate=ctx.latest("respiratory_rate"),
        oxygen_saturation=ctx.latest("oxygen_saturation"),
        systolic_bp=ctx.latest("systolic"),
        pulse_rate=ctx.latest("heart_rate"),
        temperature_c=ctx.latest("body_temperature"),
        on_oxygen=ctx.on_oxygen,
        consciousness_level=ctx.consciousness or None,
        scale=ctx.scale,
    )


@rule(
    "news2",
    (
        "respiratory_rate",
        "oxygen_saturation",
        "systolic",
        "heart_rate",
        "body_temperature",
        "on_oxygen",
        "consciousness",
    ),
    "Observation (NEWS2 score) and Flag",
    NEWS2_CODING,
)
def news2_rule(ctx: Context) -> list[Finding]:
    score = ctx.news2 or compute_news2(ctx)
    severity = {"low-medium": 1, "medium": 2, "high": 3}.get(score.band)
    if severity is None:
        return []
    partial = " (partial)" if score.partial else ""
    return [
        Finding(
            "news2",
            "news2",
            severity,
            f"NEWS2 {score.total}{partial}: {score.band} risk, {score.response}",
            ctx.evidence(
                "respiratory_rate",
                "oxygen_saturation",
                "systolic",
                "heart_rate",
                "body_temperature",
            ),
            NEWS2_CODING,
        )
    ]


@rule(
    "threshold",
    tuple(DEFAULT_THRESHOLDS),
    "Flag",
    (LOCAL, "threshold", "Vital sign outside its alert threshold"),
)
def threshold_rule(ctx: Context) -> list[Finding]:
    out = []
    for vital, (low, high) in thresholds_in_force(ctx.thresholds).items():
        value = ctx.latest(vital)
        if value is None:
            continue
        unit = UNITS.get(vital, "")
        if low is not None and value < low:
            out.append(
                Finding(
                    f"threshold:{vital}",
                    "threshold",
                    2,
                    f"{LABELS[vital]} {value:g} {unit} below {low:g}",
                    ctx.evidence(vital),
                    REGISTRY["threshold"].coding,
                )
            )
        elif high is not None and value > high:
            out.append(
                Finding(
                    f"threshold:{vital}",
                    "threshold",
                    2,
                    f"{LABELS[vital]} {value:g} {unit} above {high:g}",
                    ctx.evidence(vital),
                    REGISTRY["threshold"].coding,
                )
            )
    return out


@rule(
    "baseline",
    tuple(MIN_DEVIATION),
    "Flag",
    (LOCAL, "baseline-deviation", "Deviation from the personal baseline"),
)
def baseline_rule(ctx: Context) -> list[Finding]:
    out = []
    for vital, floor in MIN_DEVIATION.items():
        base = ctx.state.get("baseline", {}).get(vital)
        value = ctx.latest(vital)
        if base is None or value is None:
            continue
        # 1.4826 × MAD estimates the standard deviation; 4 of them is far for this patient.
        limit = max(4 * 1.4826 * base["mad"], floor)
        if abs(value - base["median"]) > limit:
            direction = "above" if value > base["median"] else "below"
            out.append(
                Finding(
                    f"baseline:{vital}",
                    "baseline",
                    1,
                    f"{LABELS[vital]} {value:g} is far {direction} this patient's usual {base['median']:g}",
                    ctx.evidence(vital),
                    REGISTRY["baseline"].coding,
                )
            )
    return out


@rule(
    "trend",
    ("heart_rate", "respiratory_rate", "oxygen_saturation"),
    "Flag",
    (LOCAL, "sustained-trend", "Sustained trend"),
)
def trend_rule(ctx: Context) -> list[Finding]:
    """A vital moving one way for 6 hours (hourly means): HR or RR rising, SpO2 falling."""
    out = []
    # A rise must also end somewhere abnormal: the daily rhythm lifts a calm patient's heart rate
    # by 10-15/min every morning, which is no deterioration.
    for vital, sign, rise, level in (
        ("heart_rate", 1, 15, 95),
        ("respiratory_rate", 1, 5, 21),
        ("oxygen_saturation", -1, 4, 94),
    ):
        means = ctx.hourly(vital, 6)
        if len(means) < 6:
            continue
        steps = [b - a for a, b in itertools.pairwise(means)]
        # Sustained: every hour further than the one before, and the last two both abnormal
        # (an hour of exercise lifts one hourly mean, not six in a row).
        beyond = all((m >= level) if sign > 0 else (m <= level) for m in means[-2:])
        if beyond and all(s * sign > 0 for s in steps) and (means[-1] - means[0]) * sign >= rise:
            verb = "rising" if sign > 0 else "falling"
            out.append(
                Finding(
                    f"trend:{vital}",
                    "trend",
                    1,
                    f"{LABELS[vital]} {verb} over 6 h ({means[0]:.0f} → {means[-1]:.0f})",
                    ctx.evidence(vital),
                    REGISTRY["trend"].coding,
                )
            )
    return out


def bp_category(systolic: float, diastolic: float) -> str:
    """ACC/AHA 2017; with the two in different categories, the higher."""
    order = ["normal", "elevated", "stage 1", "stage 2", "hypertensive crisis"]

    def sys_cat(s: float) -> str:
        if s > 180:
            return "hypertensive crisis"
        if s >= 140:
            return "stage 2"
        if s >= 130:
            return "stage 1"
        if s >= 120:
            return "elevated"
        return "normal"

    def dia_cat(d: float) -> str:
        if d > 120:
            return "hypertensive crisis"
        if d >= 90:
            return "stage 2"
        if d >= 80:
            return "stage 1"
        return "normal"

    return max(sys_cat(systolic), dia_cat(diastolic), key=order.index)


@rule(
    "bp_category",
    ("systolic", "diastolic"),
    "Flag for a hypertensive crisis",
    (SNOMED, "706882009", "Hypertensive crisis"),
)
def bp_rule(ctx: Context) -> list[Finding]:
    s, d = ctx.latest("systolic"), ctx.latest("diastolic")
    if s is None or d is None:
        return []
    category = bp_category(s, d)
    ctx.state["bp_category"] = category
    if category != "hypertensive crisis":
        return []
    return [
        Finding(
            "bp:crisis",
            "bp_category",
            3,
            f"Hypertensive crisis: BP {s:g}/{d:g} mmHg",
            ctx.evidence("systolic"),
            REGISTRY["bp_category"].coding,
        )
    ]


@rule(
    "qsofa",
    ("systolic", "respiratory_rate", "consciousness"),
    "Flag",
    (LOCAL, "qsofa", "qSOFA positive"),
)
def qsofa_rule(ctx: Context) -> list[Finding]:
    """qSOFA (Seymour et al., JAMA 2016): SBP ≤ 100, RR ≥ 22, altered mentation; ≥ 2 is positive.

    Mentation comes only from a clinician; without it qSOFA is scored on the other two.
    """
    s, rr = ctx.latest("systolic"), ctx.latest("respiratory_rate")
    if s is None or rr is None:
        return []
    points = (s <= 100) + (rr >= 22) + (ctx.consciousness not in ("", None, "alert"))
    if points < 2:
        return []
    return [
        Finding(
            "qsofa",
            "qsofa",
            2,
            f"qSOFA {points}: SBP {s:g}, RR {rr:g}",
            ctx.evidence("systolic", "respiratory_rate"),
            REGISTRY["qsofa"].coding,
        )
    ]


@rule(
    "device_event",
    ("fall", "irregular_rhythm"),
    "Flag at once",
    (SNOMED, "1912002", "Fall (event)"),
)
def event_rule(ctx: Context) -> list[Finding]:
    out = []
    for kind, severity, text, coding in (
        ("fall", 3, "Fall detected by the wearable", (SNOMED, "1912002", "Fall (event)")),
        (
            "irregular_rhythm",
            2,
            "Irregular rhythm reported by the wearable",
            (SNOMED, "361137007", "Irregular heart beat"),
        ),
    ):
        event = ctx.state.get("events", {}).get(kind)
        if event and ctx.now - parse_interval(event["time"]).low <= EVENT_WINDOW:
            out.append(
                Finding(
                    f"event:{kind}",
                    "device_event",
                    severity,
                    f"{text} at {event['time'][11:16]}",
                    (event["observation"],),
                    coding,
                )
            )
    return out


@rule(
    "device_state",
    ("devices",),
    "Flag",
    (LOCAL, "device-state", "Wearable not reporting or battery low"),
)
def device_rule(ctx: Context) -> list[Finding]:
    """Data gaps and failing devices, flagged before they fail: silent > 30 min, battery < 15 %
    or draining faster than 15 %/h."""
    out = []
    for device, seen in ctx.state.get("devices", {}).items():
        last = seen.get("last_seen")
        if last and ctx.now - parse_interval(last).low > timedelta(minutes=30):
            minutes = int((ctx.now - parse_interval(last).low).total_seconds() // 60)
            out.append(
                Finding(
                    f"device:silent:{device}",
                    "device_state",
                    1,
                    f"Device/{device} silent for {minutes} min",
                    (),
                    REGISTRY["device_state"].coding,
                )
            )
        battery, drain = seen.get("battery"), seen.get("drain_per_hour")
        if battery is not None and (battery < 15 or (drain is not None and drain > 15)):
            out.append(
                Finding(
                    f"device:battery:{device}",
                    "device_state",
                    1,
                    f"Device/{device} battery {battery:g} %",
                    (),
                    REGISTRY["device_state"].coding,
                )
            )
    return out


# Findings that describe the problem an umbrella finding already names: while the umbrella
# raises an alert they are folded into it, so the clinician gets one alert for one problem.
FOLDED = {
    "news2": {
        "threshold:heart_rate",
        "threshold:respiratory_rate",
        "threshold:oxygen_saturation",
        "threshold:body_temperature",
        "threshold:systolic",
        "qsofa",
        "trend:heart_rate",
        "trend:respiratory_rate",
        "trend:oxygen_saturation",
        "baseline:heart_rate",
        "baseline:respiratory_rate",
        "baseline:oxygen_saturation",
        "baseline:body_temperature",
        "baseline:systolic",
    },
    "bp:crisis": {"threshold:systolic", "threshold:diastolic"},
}


def _fold(findings: list[Finding], umbrella: str, members: set[str]) -> list[Finding]:
    head = next((f for f in findings if f.problem == umbrella), None)
    folded = [f for f in findings if f.problem in members]
    if head is None or not folded:
        return findings
    merged = Finding(
        head.problem,
        head.rule,
        max([head.severity, *(f.severity for f in folded)]),
        head.summary + "; " + "; ".join(f.summary for f in folded),
        tuple(dict.fromkeys(head.evidence + tuple(e for f in folded for e in f.evidence))),
        head.coding,
    )
    return [merged] + [f for f in findings if f.problem != umbrella and f.problem not in members]


def evaluate(ctx: Context) -> list[Finding]:
    ctx.news2 = compute_news2(ctx)
    findings: list[Finding] = []
    for registered in REGISTRY.values():
        findings.extend(registered.evaluate(ctx))
    for umbrella, members in FOLDED.items():
        findings = _fold(findings, umbrella, members)
    return findings
