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


def _number(value: object) -> float | int | None:
    """A threshold as a number; anything else (hand-edited JSON) counts as not set."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _settings(scale: int, on_oxygen: bool | None, overrides: dict) -> PatientSettings:
    thresholds = {}
    overridden = set()
    for vital, (low, high) in DEFAULT_THRESHOLDS.items():
        override = overrides.get(vital) if isinstance(overrides.get(vital), dict) else {}
        set_low, set_high = _number(override.get("low")), _number(override.get("high"))
        if set_low is not None or set_high is not None:
            overridden.add(vital)
        thresholds[vital] = (
            low if set_low is None else set_low,
            high if set_high is None else set_high,
        )
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
        out[patient_id] = _settings(
            scale, on_oxygen, overrides if isinstance(overrides, dict) else {}
        )
    return out
