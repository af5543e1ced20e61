"""Chart data of the patient twin page: one vital (or NEWS2) over 24 h, 7 d or 30 d.

- 24 h: every stored Observation of the vital (found through the search indexes: the
  patient's compartment, the LOINC code, the effective date);
- 7 d and 30 d: the hourly aggregates the twin keeps (``VitalHour``: mean, lowest, highest);
- NEWS2: the score Observations the twin wrote (SNOMED CT 1287358002), over any range.

Beside the points: the alert thresholds in force for the patient (defaults or the clinician's
overrides) and the personal baseline band, median ± 2 robust standard deviations
(1.4826 × MAD estimates one), as ``twins.rules`` uses them. Times are epoch milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from fhir_api import json_io
from fhir_api.exceptions import BadRequest
from fhir_api.models import DateIndex, Resource, TokenIndex

from . import news2 as news2_scores
from .display import instant, unit_label
from .models import PatientTwin, VitalHour
from .rules import thresholds_in_force
from .vitals import BP_PANEL, LABELS, LOINC_VITALS, UNITS, effective, readings_of

RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
NEWS2 = "news2"
# The vitals charted, in the page's order.
CHARTED = (
    "heart_rate",
    "respiratory_rate",
    "oxygen_saturation",
    "body_temperature",
    "systolic",
    "diastolic",
    "blood_glucose",
    "hrv_sdnn",
    "body_weight",
    "steps",
)
BASELINE_SPREAD = 2 * 1.4826  # × MAD: two robust standard deviations
MAX_POINTS = 5000
# Aggregate NEWS2 levels that call for an urgent (5) and an emergency (7) response.
NEWS2_LINES = [
    {"value": 5, "label": "5: urgent response", "kind": "high"},
    {"value": 7, "label": "7: emergency response", "kind": "high"},
]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def codes_for(vital: str) -> list[str]:
    """The codes of the Observations that carry ``vital`` (a BP panel carries both pressures)."""
    codes = [code for code, name in LOINC_VITALS.items() if name == vital]
    if vital in ("systolic", "diastolic"):
        codes.append(BP_PANEL)
    return codes


def observations(patient_id: str, codes: list[str], start: datetime, end: datetime):
    """The patient's current Observations with one of ``codes``, effective in [start, end]."""
    coded = TokenIndex.objects.filter(
        patient=patient_id, resource_type="Observation", param="code", code__in=codes
    ).values("resource_id")
    dated = DateIndex.objects.filter(
        patient=patient_id,
        resource_type="Observation",
        param="date",
        low__gte=start,
        low__lte=end,
    ).values("resource_id")
    rows = (
        Resource.objects.filter(pk__in=coded, deleted=False)
        .filter(pk__in=dated)
        .values_list("content", flat=True)
    )
    for content in rows[:MAX_POINTS]:
        yield json_io.loads(content)


def thresholds(twin: PatientTwin, vital: str) -> list[dict[str, Any]]:
    """The alert thresholds in force: the twin's overrides, else the defaults."""
    low, high = thresholds_in_force(twin.thresholds).get(vital, (None, None))
    lines = []
    if low is not None:
        lines.append({"value": low, "label": f"alert below {low:g}", "kind": "low"})
    if high is not None:
        lines.append({"value": high, "label": f"alert above {high:g}", "kind": "high"})
    return lines


def baseline_band(twin: PatientTwin, vital: str) -> dict[str, float] | None:
    base = twin.state.get("baseline", {}).get(vital)
    if not base:
        return None
    spread = BASELINE_SPREAD * base["mad"]
    return {
        "median": base["median"],
        "low": round(base["median"] - spread, 2),
        "high": round(base["median"] + spread, 2),
        "hours": base.get("hours"),
    }


def window(twin: PatientTwin, range_key: str, now: datetime | None = None):
    """[start, end]: ending at the newer of now and the twin's clock (its newest reading)."""
    if range_key not in RANGES:
        raise BadRequest(f"range is one of {', '.join(RANGES)}")
    end = now or timezone.now()
    clock = instant(twin.state.get("clock"))
    if clock and clock > end:
        end = clock
    return end - RANGES[range_key], end


def _raw_points(patient_id: str, vital: str, start: datetime, end: datetime) -> list[list]:
    points = []
    for obs in observations(patient_id, codes_for(vital), start, end):
        at = effective(obs)
        value = next((v for name, v in readings_of(obs) if name == vital), None)
        if at is not None and value is not None:
            points.append([ms(at), value])
    return sorted(points)


def _hourly_points(patient_id: str, vital: str, start: datetime) -> tuple[list, list]:
    rows = (
        VitalHour.objects.filter(patient_id=patient_id, vital=vital, hour__gte=start)
        .order_by("hour")
        .values_list("hour", "n", "total", "low", "high")
    )
    points, spread = [], []
    for hour, n, total, low, high in rows:
        if not n:
            continue
        middle = ms(hour + timedelta(minutes=30))
        points.append([middle, round(total / n, 2)])
        spread.append([middle, low, high])
    return points, spread


def _news2_points(patient_id: str, start: datetime, end: datetime) -> list[list]:
    points = []
    for obs in observations(patient_id, [news2_scores.NEWS2_CODE[0]], start, end):
        at = effective(obs)
        if at is not None and obs.get("valueInteger") is not None:
            points.append([ms(at), obs["valueInteger"], obs.get("status") == "preliminary"])
    return sorted(points)


def series(
    twin: PatientTwin, vital: str, range_key: str, now: datetime | None = None
) -> dict[str, Any]:
    """The chart of ``vital`` (or ``news2``) over ``range_key`` for the twin's patient."""
    if vital != NEWS2 and vital not in CHARTED:
        raise BadRequest(f"vital is news2 or one of {', '.join(CHARTED)}")
    start, end = window(twin, range_key, now)
    out: dict[str, Any] = {
        "patient": twin.patient_id,
        "vital": vital,
        "range": range_key,
        "start": ms(start),
        "end": ms(end),
        "spread": [],
    }
    if vital == NEWS2:
        out.update(
            label="NEWS2",
            unit="",
            source="observations",
            points=_news2_points(twin.patient_id, start, end),
            lines=NEWS2_LINES,
            baseline=None,
        )
        return out
    out.update(label=LABELS[vital], unit=unit_label(UNITS.get(vital, "")))
    if range_key == "24h":
        out.update(source="observations", points=_raw_points(twin.patient_id, vital, start, end))
    else:
        points, spread = _hourly_points(twin.patient_id, vital, start)
        out.update(source="hourly", points=points, spread=spread)
    out.update(lines=thresholds(twin, vital), baseline=baseline_band(twin, vital))
    return out
