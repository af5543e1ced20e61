"""What the patient twin page shows above its charts: who, where they stand, what is open.

``overview`` gathers it for one twin in a few queries: the patient's identity, the lifecycle
stage with its history, the devices worn (pairings) with the state the twin knows of them,
the latest value of each vital beside the personal baseline, NEWS2, and the alerts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from devices.models import Pairing
from imaging.twin import patient_studies

from .display import SEVERITY, ago, instant, number, unit_label
from .models import STAGES, Alert, LifecycleEvent, PatientTwin
from .patients import PatientFacts, patient_facts
from .rules import DEFAULT_THRESHOLDS, threshold_number
from .series import CHARTED, baseline_band
from .vitals import LABELS, UNITS
from .ward import STAGE_LABELS, device_states, news2_summary

RECENTLY_RESOLVED = 5


def latest_vitals(twin: PatientTwin, now: datetime) -> list[dict[str, Any]]:
    """The newest value of each charted vital, with its age and the usual (baseline) range."""
    latest = twin.state.get("latest", {})
    out = []
    for vital in CHARTED:
        item = latest.get(vital)
        if item is None:
            continue
        at = instant(item["time"])
        band = baseline_band(twin, vital)
        out.append(
            {
                "vital": vital,
                "label": LABELS[vital],
                "value": number(item["value"]),
                "unit": unit_label(UNITS.get(vital, "")),
                "time": item["time"],
                "age": ago(max((now - at).total_seconds(), 0)) if at else "",
                "usual": f"{number(band['low'])}–{number(band['high'])}" if band else "",
                "observation": item.get("observation", ""),
            }
        )
    return out


def devices(twin: PatientTwin, now: datetime) -> list[dict[str, Any]]:
    """Devices worn now (open pairings) and any other the twin heard from, with their state."""
    pairings = list(
        Pairing.objects.filter(patient_id=twin.patient_id, end=None).select_related("device")
    )
    identifiers = {p.device.fhir_id: p.device.identifier for p in pairings}
    states = {d["device"]: d for d in device_states(twin.state, now, identifiers)}
    out = []
    for pairing in pairings:
        state = states.pop(pairing.device.fhir_id, {})
        out.append(
            {
                "device": pairing.device.fhir_id,
                "identifier": pairing.device.identifier,
                "model": pairing.device.model_name or pairing.device.kind,
                "since": pairing.start,
                "battery": state.get("battery", pairing.device.battery_level),
                "last_seen_age": state.get("last_seen_age", "never"),
                "silent": state.get("silent", False),
                "battery_low": state.get("battery_low", False),
            }
        )
    for state in states.values():  # heard from, no longer paired
        out.append({**state, "model": "", "since": None})
    return out


def thresholds_in_force(twin: PatientTwin) -> list[dict[str, Any]]:
    """Per vital: the default (low, high) and the patient's override, for the settings form."""
    overrides = twin.thresholds if isinstance(twin.thresholds, dict) else {}
    rows = []
    for vital, (low, high) in DEFAULT_THRESHOLDS.items():
        override = overrides.get(vital) if isinstance(overrides.get(vital), dict) else {}
        rows.append(
            {
                "vital": vital,
                "label": LABELS[vital],
                "unit": unit_label(UNITS.get(vital, "")),
                "default_low": low,
                "default_high": high,
                "low": threshold_number(override.get("low")),
                "high": threshold_number(override.get("high")),
                # A stored override that is not a number (hand-edited JSON): not in force.
                "ignored": [
                    f"{side} {override[side]!r}"
                    for side in ("low", "high")
                    if side in override and threshold_number(override[side]) is None
                ]
                + (
                    [repr(overrides[vital])]
                    if not isinstance(overrides.get(vital, {}), dict)
                    else []
                ),
            }
        )
    return rows


def alerts(patient_id: str) -> tuple[list[Alert], list[Alert]]:
    """(open alerts, worst first; the last few resolved), each with its actions prefetched."""
    base = Alert.objects.filter(patient_id=patient_id).prefetch_related("actions__by")
    open_ = list(base.exclude(status=Alert.RESOLVED).order_by("-severity", "-last_seen"))
    resolved = list(base.filter(status=Alert.RESOLVED).order_by("-resolved")[:RECENTLY_RESOLVED])
    for alert in [*open_, *resolved]:
        alert.severity_label = SEVERITY[alert.severity]
    return open_, resolved


def overview(twin: PatientTwin, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    facts = patient_facts([twin.patient_id], now.date()).get(twin.patient_id) or PatientFacts(
        twin.patient_id, f"Patient/{twin.patient_id}"
    )
    open_alerts, resolved_alerts = alerts(twin.patient_id)
    vitals = latest_vitals(twin, now)
    return {
        "twin": twin,
        "patient": facts,
        "stage_label": STAGE_LABELS.get(twin.stage, twin.stage),
        "stages": STAGES,
        "stage_history": list(
            LifecycleEvent.objects.filter(patient_id=twin.patient_id).order_by("-at")
        ),
        "devices": devices(twin, now),
        "vitals": vitals,
        "charted": [v["vital"] for v in vitals],
        "news2": news2_summary(twin.news2),
        "open_alerts": open_alerts,
        "resolved_alerts": resolved_alerts,
        "thresholds": thresholds_in_force(twin),
        "clock": instant(twin.state.get("clock")),
        "imaging_studies": patient_studies(twin.patient_id),
    }
