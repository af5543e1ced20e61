"""Forecasts for the local demo (``manage.py load_demo``): hourly history, then real runs.

A forecast needs at least 48 hourly values (``model.MIN_POINTS``), more than the one set of vital
signs each demo patient has and more than the simulated wearables stream in a demo's first
minutes. So two demo patients wear a demo wristband that has sent five days of hourly readings
(heart rate, respiratory rate, SpO2, temperature, blood pressure) up to the last full hour. They
go in through the devices write path (``devices.services.ingest``: checked, mapped to vital-sign
Observations, written by ``fhir_api.bulk``, announced to the twin), whose reading keys make a
second load in the same hour store nothing twice; a load on a later day retires the earlier
load's readings and stores the five days to its own last hour (``retire_earlier``).

The values follow each patient's day (a daily rhythm, deterministic noise of the patient, vital
and hour). Dorothy Nakamura (heart failure) is deteriorating: her heart rate has been climbing
for five days towards her alert threshold (130 /min), so her forecast warns early; Harold Bennett
(COPD) is stable. Then ``services.forecast_patient`` runs their forecasts in process
(https://hl7.org/fhir/R4B/riskassessment.html for what each run writes); a vital with too
little data (their weight: one value) gets a skipped run that says why.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from devices import services as devices
from devices.adapters import parse_payload
from devices.mapping import READING_ID_SYSTEM
from devices.models import Device, ReadingKey
from devices.readings import parse_time
from fhir_api import json_io
from fhir_api import services as store
from fhir_api.models import DateIndex, ReferenceIndex, Resource
from fhir_api.search.dates import format_instant

from .models import ForecastRun
from .services import forecast_patient

HOURS = 120
MODEL = "CloudDTH demo wristband"


@dataclass(frozen=True)
class Vital:
    kind: str  # the devices reading type
    unit: str
    base: float
    swing: float  # amplitude of the daily rhythm (lowest around 04:00, highest around 16:00)
    noise: float
    digits: int = 0


@dataclass(frozen=True)
class History:
    """One demo patient's hourly history: each vital about its ``base`` at the last reading,
    ``rise`` per hour before it (the vitals not named there are level)."""

    vitals: tuple[Vital, ...]
    rise: dict[str, float]


def _vitals(hr: float, rr: float, spo2: float, temp: float, sbp: float, dbp: float):
    return (
        Vital("heart_rate", "/min", hr, 5, 1.5),
        Vital("respiratory_rate", "/min", rr, 1, 0.5),
        Vital("oxygen_saturation", "%", spo2, 0.5, 0.4),
        Vital("body_temperature", "Cel", temp, 0.3, 0.05, digits=1),
        Vital("systolic", "mm[Hg]", sbp, 8, 3),
        Vital("diastolic", "mm[Hg]", dbp, 5, 2),
    )


HISTORIES: dict[str, History] = {
    # Heart failure: the heart rate has climbed 0.35 /min an hour for five days, 79 -> 121 /min.
    "DTH-0003": History(_vitals(121, 18, 95, 36.6, 118, 70), rise={"heart_rate": 0.35}),
    # COPD, stable: a low-normal SpO2 and a fast-ish respiratory rate, with the day's rhythm.
    "DTH-0002": History(_vitals(80, 20, 94, 36.8, 136, 80), rise={}),
}


def device_identifier(key: str) -> str:
    return f"DEMO-{key}-W"


def _value(key: str, vital: Vital, rise: float, at: datetime, last: datetime) -> float:
    hour = at.hour + at.minute / 60
    rhythm = vital.swing * math.sin((hour - 10) / 24 * 2 * math.pi)
    noise = random.Random(f"{key}:{vital.kind}:{at.isoformat()}").gauss(0, vital.noise)
    trend = -rise * (last - at).total_seconds() / 3600
    return round(vital.base + trend + rhythm + noise, vital.digits)


def readings(key: str, history: History, now: datetime) -> list[dict]:
    """The readings of ``HOURS`` hours to the last full hour before ``now``, at 20 past each."""
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = this_hour - timedelta(hours=1) + timedelta(minutes=20)
    out: list[dict] = []
    for back in range(HOURS - 1, -1, -1):
        at = last - timedelta(hours=back)
        values = {
            v.kind: _value(key, v, history.rise.get(v.kind, 0.0), at, last) for v in history.vitals
        }
        time = format_instant(at)
        for v in history.vitals:
            if v.kind in ("systolic", "diastolic"):
                continue
            out.append({"type": v.kind, "value": values[v.kind], "unit": v.unit, "time": time})
        out.append(
            {
                "type": "blood_pressure",
                "systolic": round(values["systolic"]),
                "diastolic": round(values["diastolic"]),
                "unit": "mm[Hg]",
                "time": time,
            }
        )
    return out


def load_history(key: str, patient_id: str, *, now: datetime | None = None) -> int:
    """Store the patient's demo history through the devices write path; readings stored."""
    history = HISTORIES[key]
    now = now or timezone.now()
    device = devices.register_device(device_identifier(key), model_name=MODEL)
    fresh = readings(key, history, now)
    retire_earlier(device, parse_time(fresh[-1]["time"]))
    devices.pair(device, patient_id, start=now - timedelta(hours=HOURS + 2), by="load_demo")
    items = parse_payload({"readings": fresh})
    result = devices.ingest(device, items, source="http")
    return result.accepted


def retire_earlier(device: Device, last: datetime) -> int:
    """The wristband's readings of a load on an earlier day, deleted; how many.

    Each load's five days end at its own last hour, so a load days later would join a second,
    shifted copy of the story to the first (Dorothy's climb starting again from 96 /min), and
    her forecast would no longer warn early. A later load therefore deletes the earlier load's
    readings (FHIR deletes: the record's history keeps them), releases their reading keys, and
    stores the five days to its own last hour afresh. A second load within the same hour
    changes nothing.
    """
    observed = ReferenceIndex.objects.filter(
        resource_type="Observation",
        param="device",
        target_type="Device",
        target_id=device.fhir_id,
        resource__deleted=False,
    ).values("resource_id")
    dates = DateIndex.objects.filter(param="date", resource_id__in=observed)
    newest = dates.aggregate(newest=Max("low"))["newest"]
    if newest is None or newest == last:
        return 0
    ids = list(Resource.objects.filter(pk__in=observed).values_list("logical_id", "content"))
    keys = []
    with transaction.atomic():  # one commit (SQLite: one fsync) for the lot
        for logical_id, content in ids:
            for ident in json_io.loads(content).get("identifier", []):
                if ident.get("system") == READING_ID_SYSTEM:
                    keys.append(ident["value"])
            store.delete("Observation", logical_id)
        ReadingKey.objects.filter(key__in=keys).delete()
    return len(ids)


def forecast(patient_ids: list[str], say: Callable[[str], None]) -> list[ForecastRun]:
    """Run every forecast of these patients in process; the runs (stored ones reused)."""
    runs: list[ForecastRun] = []
    for patient_id in patient_ids:
        runs += forecast_patient(patient_id)
    done = [r for r in runs if r.status == ForecastRun.DONE]
    warned = [
        r
        for r in done
        if r.beats_baseline
        and r.probability is not None
        and r.probability >= settings.FORECAST_ALERT_PROBABILITY
    ]
    say(
        f"  forecasts: {len(runs)} series, {len(done)} forecast,"
        f" {len(runs) - len(done)} skipped or failed (the reason is on each run),"
        f" {len(warned)} with an early warning"
    )
    return runs
