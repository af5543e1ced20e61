"""The series a forecast is fitted on: regular aggregates of one vital of one patient.

Hourly means for the fast vitals (heart rate, respiratory rate, SpO2, temperature, systolic and
diastolic pressure: 30 days), daily means for weight and glucose (90 days). They are read from
the twin's hourly aggregates (``twins.models.VitalHour``), which the twin builds from the stored
Observations only: a reading the devices app rejected never became an Observation, so it is in
no series. A bucket with no reading is ``None`` in the history (a gap the model leaves out),
never interpolated. The window ends at the newest bucket with data at ``now``, so the same data
gives the same series (and digest) whenever it is read.

Observations: hl7.org/fhir/R4B/observation-vitalsigns.html; the codes and vitals are
``twins.vitals``'.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q

from fhir_api.models import DateIndex, TokenIndex
from twins.models import VitalHour
from twins.series import codes_for
from twins.vitals import LABELS, LOINC_VITALS, UNITS

from .model import DAILY, HOURLY, STEP

# The vitals forecast: (the code runs are stored under, granularity, how far back the series goes).
FORECAST_VITALS: dict[str, tuple[str, str, timedelta]] = {
    "heart_rate": ("8867-4", HOURLY, timedelta(days=30)),
    "respiratory_rate": ("9279-1", HOURLY, timedelta(days=30)),
    "oxygen_saturation": ("2708-6", HOURLY, timedelta(days=30)),
    "body_temperature": ("8310-5", HOURLY, timedelta(days=30)),
    "systolic": ("8480-6", HOURLY, timedelta(days=30)),
    "diastolic": ("8462-4", HOURLY, timedelta(days=30)),
    "body_weight": ("29463-7", DAILY, timedelta(days=90)),
    "blood_glucose": ("41653-7", DAILY, timedelta(days=90)),
}
# The Observations listed as a RiskAssessment's basis: the most recent of those used.
MAX_BASIS = 100


class UnknownCode(ValueError):
    """The code is no LOINC code of a vital that is forecast."""


@dataclass(frozen=True)
class Vital:
    name: str
    code: str
    granularity: str
    lookback: timedelta

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    @property
    def unit(self) -> str:
        return UNITS.get(self.name, "")


def vital_for(code: str) -> Vital:
    """The forecast vital a LOINC code stands for (59408-5 is SpO2 as 2708-6 is)."""
    name = LOINC_VITALS.get(code)
    if name not in FORECAST_VITALS:
        known = ", ".join(f"{c} ({n})" for n, (c, _g, _l) in FORECAST_VITALS.items())
        raise UnknownCode(f"'{code}' is not the LOINC code of a vital that is forecast: {known}")
    canonical, granularity, lookback = FORECAST_VITALS[name]
    return Vital(name, canonical, granularity, lookback)


def by_name(name: str) -> Vital:
    return vital_for(FORECAST_VITALS[name][0])


@dataclass
class Series:
    patient_id: str
    vital: Vital
    # [(bucket start, mean or None for a bucket without data)], oldest first
    history: list[tuple[datetime, float | None]] = field(default_factory=list)

    @property
    def n_points(self) -> int:
        return sum(1 for _t, v in self.history if v is not None)

    @property
    def window_start(self) -> datetime | None:
        return self.history[0][0] if self.history else None

    @property
    def window_end(self) -> datetime | None:
        """The end of the newest bucket."""
        return self.history[-1][0] + STEP[self.vital.granularity] if self.history else None

    def as_json(self) -> list[list[Any]]:
        return [[_iso(t), None if v is None else round(v, 4)] for t, v in self.history]

    def digest(self, **context: Any) -> str:
        """sha256 of the series and of what else decides the run (horizon, threshold …)."""
        payload = json.dumps(
            {"vital": self.vital.code, "granularity": self.vital.granularity}
            | {"history": self.as_json()}
            | context,
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def build(patient_id: str, vital: Vital, now: datetime) -> Series:
    """The patient's series of ``vital`` ending at the newest bucket with data at ``now``."""
    rows = VitalHour.objects.filter(patient_id=patient_id, vital=vital.name, n__gt=0)
    newest = rows.filter(hour__lte=now).order_by("-hour").values_list("hour", flat=True).first()
    series = Series(patient_id, vital)
    if newest is None:
        return series
    step = STEP[vital.granularity]
    if vital.granularity == HOURLY:
        last = newest.astimezone(UTC)
        first = last - vital.lookback + step
        sums: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0])
        for hour, n, total in rows.filter(hour__gte=first, hour__lte=last).values_list(
            "hour", "n", "total"
        ):
            sums[hour.astimezone(UTC)] = [total, n]
    else:
        last = _day(newest)
        first = last - vital.lookback + step
        sums = defaultdict(lambda: [0.0, 0])
        for hour, n, total in rows.filter(hour__gte=first, hour__lte=now).values_list(
            "hour", "n", "total"
        ):
            bucket = sums[_day(hour)]
            bucket[0] += total
            bucket[1] += n
    start = min(sums)
    history: list[tuple[datetime, float | None]] = []
    at = start
    while at <= last:
        total, n = sums.get(at, (0.0, 0))
        history.append((at, total / n if n else None))
        at += step
    series.history = history
    return series


def basis(series: Series, limit: int = MAX_BASIS) -> list[str]:
    """Ids of the most recent Observations (up to ``limit``) the series was built from."""
    if not series.history:
        return []
    codes = codes_for(series.vital.name)
    coded = TokenIndex.objects.filter(
        patient=series.patient_id, resource_type="Observation", param="code", code__in=codes
    ).values("resource_id")
    rows = (
        DateIndex.objects.filter(
            patient=series.patient_id,
            resource_type="Observation",
            param="date",
            low__gte=series.window_start,
            low__lt=series.window_end,
            resource_id__in=coded,
        )
        .filter(Q(resource__deleted=False))
        .order_by("-low", "-resource_id")
        .values_list("resource__logical_id", flat=True)
    )
    return list(dict.fromkeys(rows[: limit * 2]))[:limit]


def vitals_with_data(patient_id: str, since: datetime) -> list[Vital]:
    """The forecast vitals the patient has any bucket for since ``since``."""
    names = set(
        VitalHour.objects.filter(
            patient_id=patient_id, vital__in=list(FORECAST_VITALS), hour__gte=since, n__gt=0
        )
        .values_list("vital", flat=True)
        .distinct()
    )
    return [by_name(name) for name in FORECAST_VITALS if name in names]
