"""Early warning: how likely the vital crosses the patient's alert threshold within the horizon.

The thresholds are the twin's (``twins.series.thresholds``: the clinician's overrides for this
patient, else ``twins.rules.DEFAULT_THRESHOLDS``), the ones its threshold rule alerts on: above
``high`` or below ``low``. From prophet's predictive sample paths, the probability of crossing
is the share of paths that cross at some step of the horizon; the crossing time is the median
first-crossing time of those paths. Of a vital's two thresholds the one more likely crossed is
reported (equally likely: the one the mean forecast comes closest to).

Above ``FORECAST_ALERT_PROBABILITY`` (0.7), and only from a forecast that beat its baseline, the
warning opens a *predicted* alert on the twin (``twins.models.Alert.predicted``, low severity
where a real threshold alert is medium, summary "Predicted: …", with its FHIR Flag written by
the twin's code); a later run that no longer predicts it resolves it (``twins.alerts.resolve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings

from twins import alerts as twin_alerts
from twins import fhir as twin_fhir
from twins.display import unit_label
from twins.models import Alert, PatientTwin
from twins.rules import LOCAL, Finding
from twins.series import thresholds

ABOVE, BELOW = "above", "below"
RULE = "forecast"
SEVERITY = 1  # low: a real threshold alert is medium (twins.rules.threshold_rule)
CODING = (LOCAL, "predicted-threshold", "Predicted crossing of an alert threshold")


@dataclass(frozen=True)
class Warning:
    threshold: float
    direction: str
    probability: float
    crossing_at: datetime | None


def patient_thresholds(patient_id: str, vital: str) -> list[tuple[float, str]]:
    """(value, above/below) of the alert thresholds in force for the patient's ``vital``."""
    twin = PatientTwin.objects.filter(patient_id=patient_id).first() or PatientTwin(
        patient_id=patient_id
    )
    return [
        (float(line["value"]), ABOVE if line["kind"] == "high" else BELOW)
        for line in thresholds(twin, vital)
    ]


def crossing(
    samples: np.ndarray, times: list[datetime], lines: list[tuple[float, str]]
) -> Warning | None:
    """The threshold most likely crossed in ``samples`` (steps × paths); None without one."""
    best: Warning | None = None
    best_key: tuple[float, float] | None = None
    mean = samples.mean(axis=1) if samples.size else np.zeros(0)
    for value, direction in lines:
        crossed = samples > value if direction == ABOVE else samples < value
        ever = crossed.any(axis=0)
        probability = round(float(ever.mean()), 4) if samples.size else 0.0
        at = None
        if ever.any():
            first = crossed[:, ever].argmax(axis=0)
            at = times[int(np.median(first))]
        # Equally likely (say, both never): the threshold the forecast comes closest to.
        gap = (
            float(np.min(value - mean if direction == ABOVE else mean - value))
            if mean.size
            else 0.0
        )
        key = (probability, -gap)
        if best_key is None or key > best_key:
            best, best_key = Warning(value, direction, probability, at), key
    return best


def fires(warning: Warning | None, beats_baseline: bool) -> bool:
    return (
        warning is not None
        and beats_baseline
        and warning.probability >= settings.FORECAST_ALERT_PROBABILITY
    )


def summary(label: str, unit: str, warning: Warning, horizon_text: str) -> str:
    when = (
        f", most likely around {warning.crossing_at:%Y-%m-%d %H:%M} UTC"
        if warning.crossing_at
        else ""
    )
    return (
        f"Predicted: {label} {warning.direction} {warning.threshold:g} {unit_label(unit)} within "
        f"{horizon_text} ({warning.probability:.0%} chance{when})"
    )


def update_alert(
    patient_id: str,
    vital: str,
    text: str | None,
    now: datetime,
) -> Alert | None:
    """Open or refresh the predicted alert of ``vital`` with ``text``, or resolve it (``None``).

    Runs inside the caller's transaction; the alert's Flag is written by the twin's code."""
    problem = f"{RULE}:{vital}"
    alert = (
        Alert.objects.select_for_update()
        .filter(patient_id=patient_id, problem=problem)
        .exclude(status=Alert.RESOLVED)
        .first()
    )
    if text is None:
        if alert is not None:
            twin_alerts.resolve(alert, now)
        return None
    finding = Finding(problem, RULE, SEVERITY, text[:300], (), CODING)
    if alert is None:
        alert = Alert.objects.create(
            patient_id=patient_id,
            problem=problem,
            rule=RULE,
            severity=SEVERITY,
            predicted=True,
            summary=text[:300],
            opened=now,
            last_seen=now,
        )
    elif alert.summary == text[:300]:
        alert.last_seen = now
        alert.save(update_fields=["last_seen"])
        return alert
    alert.summary, alert.last_seen = text[:300], now
    alert.flag_id = twin_fhir.flag(
        patient_id, alert.pk, finding, start=alert.opened, flag_id=alert.flag_id or None
    )
    alert.save()
    return alert
