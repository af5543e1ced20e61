"""The ward overview: every monitored patient, the most at risk first.

``ward_rows`` reads the twins (their ``risk`` is the sort key the twin keeps, see
``services.ward_rank``: an open alert keeps its rank until it closes), the open alerts
and the devices in a fixed number of queries, whatever the number of patients, and gives plain
JSON-ready dicts: the page renders them, and ``/twins/ward.json`` sends them for the page to
re-render itself every second or two.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone

from devices.models import Device
from fhir_api.search.dates import format_instant

from .display import LOW_BATTERY, SEVERITY, SILENT_SECONDS, ago, instant
from .models import STAGES, Alert, PatientTwin
from .patients import patient_facts

INACTIVE_STAGES = ("discharged", "deceased")
STAGE_LABELS = dict(STAGES)


def monitored() -> list[PatientTwin]:
    """Twins of patients still followed (not discharged from monitoring, not deceased)."""
    return list(
        PatientTwin.objects.exclude(stage__in=INACTIVE_STAGES).order_by("-risk", "patient_id")
    )


def device_states(
    state: dict[str, Any], now: datetime, identifiers: dict[str, str]
) -> list[dict[str, Any]]:
    """Each device the twin has heard from: battery, last report, silent, battery low."""
    out = []
    for device_id, seen in sorted(state.get("devices", {}).items()):
        last = instant(seen.get("last_seen"))
        silent_for = (now - last).total_seconds() if last else None
        battery = seen.get("battery")
        drain = seen.get("drain_per_hour")
        out.append(
            {
                "device": device_id,
                "identifier": identifiers.get(device_id, f"Device/{device_id}"),
                "battery": battery,
                "drain_per_hour": drain,
                "last_seen": seen.get("last_seen"),
                "silent": silent_for is not None and silent_for > SILENT_SECONDS,
                "last_seen_age": ago(max(silent_for, 0)) if silent_for is not None else "never",
                "battery_low": battery is not None
                and (battery < LOW_BATTERY or (drain is not None and drain > LOW_BATTERY)),
            }
        )
    return out


def last_reading(state: dict[str, Any]) -> datetime | None:
    """Time of the newest vital or device event the twin knows."""
    times = [item["time"] for item in state.get("latest", {}).values()]
    times += [event["time"] for event in state.get("events", {}).values()]
    parsed = [t for t in (instant(t) for t in times) if t is not None]
    return max(parsed, default=None)


def alert_item(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "problem": alert.problem,
        "severity": alert.severity,
        "severity_label": SEVERITY[alert.severity],
        "status": alert.status,
        "summary": alert.summary,
        "assigned_to": alert.assigned_to,
        "opened": format_instant(alert.opened),
        "flag": f"Flag/{alert.flag_id}" if alert.flag_id else "",
    }


def alert_summary(alerts: list[Alert]) -> dict[str, Any]:
    """Count, worst severity and the worst alert's summary of a patient's open alerts."""
    worst = alerts[0] if alerts else None  # ordered by severity, then most recent
    return {
        "count": len(alerts),
        "unacknowledged": sum(1 for a in alerts if a.status == Alert.ACTIVE),
        "worst": worst.severity if worst else 0,
        "worst_label": SEVERITY[worst.severity] if worst else "",
        "summary": worst.summary if worst else "",
        "items": [alert_item(a) for a in alerts],
    }


def news2_summary(news2: dict[str, Any] | None) -> dict[str, Any] | None:
    if not news2:
        return None
    keys = ("total", "band", "colour", "partial", "missing", "assumed", "response", "time")
    return {key: news2.get(key) for key in keys}


def ward_rows(now: datetime | None = None) -> list[dict[str, Any]]:
    """One dict per monitored patient, in the ward's order (``PatientTwin.risk``, highest first)."""
    now = now or timezone.now()
    twins = monitored()
    ids = [t.patient_id for t in twins]
    facts = patient_facts(ids, now.date())
    open_alerts: dict[str, list[Alert]] = defaultdict(list)
    for alert in (
        Alert.objects.filter(patient_id__in=ids)
        .exclude(status=Alert.RESOLVED)
        .order_by("-severity", "-last_seen", "pk")
    ):
        open_alerts[alert.patient_id].append(alert)
    device_ids = {d for t in twins for d in t.state.get("devices", {})}
    identifiers = dict(
        Device.objects.filter(fhir_id__in=device_ids).values_list("fhir_id", "identifier")
    )
    rows = []
    for twin in twins:
        person = facts.get(twin.patient_id)
        last = last_reading(twin.state)
        age_seconds = max((now - last).total_seconds(), 0) if last else None
        rows.append(
            {
                "patient_id": twin.patient_id,
                "name": person.name if person else f"Patient/{twin.patient_id}",
                "age": person.age if person else None,
                "gender": person.gender if person else "",
                "stage": twin.stage,
                "stage_label": STAGE_LABELS.get(twin.stage, twin.stage),
                "risk": twin.risk,
                "news2": news2_summary(twin.news2),
                "alerts": alert_summary(open_alerts.get(twin.patient_id, [])),
                "last_reading": format_instant(last) if last else None,
                "last_reading_seconds": age_seconds,
                "last_reading_age": ago(age_seconds),
                "devices": device_states(twin.state, now, identifiers),
                "url": reverse("twins:patient", args=[twin.patient_id]),
            }
        )
    return rows
