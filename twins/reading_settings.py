"""The twin's settings the device ingest reads each new value with (``devices.ranges``).

Per patient: the NEWS2 scale and supplemental oxygen, the alert thresholds in force (the
defaults of ``twins.rules`` with the clinician's overrides) and which vitals were overridden.
Registered with the devices app in ``TwinsConfig.ready``; one query for a batch's patients.
"""

from __future__ import annotations

from collections.abc import Iterable

from devices.ranges import PatientSettings

from .models import PatientTwin
from .rules import DEFAULT_THRESHOLDS


def _settings(scale: int, on_oxygen: bool | None, overrides: dict) -> PatientSettings:
    thresholds = {}
    overridden = set()
    for vital, (low, high) in DEFAULT_THRESHOLDS.items():
        override = overrides.get(vital) or {}
        if override.get("low") is not None or override.get("high") is not None:
            overridden.add(vital)
        thresholds[vital] = (override.get("low", low), override.get("high", high))
    return PatientSettings(scale, on_oxygen, thresholds, frozenset(overridden))


DEFAULT = _settings(1, None, {})


def settings_for(patient_ids: Iterable[str]) -> dict[str, PatientSettings]:
    """Each patient's settings; a patient with no twin yet has the defaults."""
    ids = list(patient_ids)
    out = dict.fromkeys(ids, DEFAULT)
    rows = PatientTwin.objects.filter(patient_id__in=ids).values_list(
        "patient_id", "news2_scale", "on_oxygen", "thresholds"
    )
    for patient_id, scale, on_oxygen, overrides in rows:
        out[patient_id] = _settings(scale, on_oxygen, overrides or {})
    return out
