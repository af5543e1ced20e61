"""From findings to alerts: one ongoing problem is one alert, with hysteresis.

A finding for a problem without an open alert opens one (and its FHIR Flag). A higher
severity escalates at once (an acknowledged alert becomes active again); a lower one
de-escalates only after it has stayed lower for ``DEESCALATE_AFTER``; a problem with no finding
for ``CALM_PERIOD`` resolves itself (the Flag becomes inactive with its period's end).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from . import fhir
from .models import Alert
from .rules import Finding

CALM_PERIOD = timedelta(minutes=getattr(settings, "TWIN_CALM_MINUTES", 30))
DEESCALATE_AFTER = timedelta(minutes=getattr(settings, "TWIN_DEESCALATE_MINUTES", 15))


def _flag(alert: Alert, finding: Finding, *, end: datetime | None = None) -> None:
    alert.flag_id = fhir.flag(
        alert.patient_id,
        alert.pk,
        finding,
        start=alert.opened,
        end=end,
        flag_id=alert.flag_id or None,
    )


def _headline(summary: str) -> str | None:
    """What a summary states before its details ("NEWS2 6 (partial)"); None when it has none."""
    head, sep, _rest = summary.partition(":")
    return head if sep else None


def _finding_of(alert: Alert) -> Finding:
    from .rules import LOCAL, REGISTRY

    coding = (
        REGISTRY[alert.rule].coding
        if alert.rule in REGISTRY
        else (LOCAL, "twin-alert", "Twin alert")
    )
    return Finding(
        alert.problem, alert.rule, alert.severity, alert.summary, tuple(alert.evidence), coding
    )


def reconcile(patient_id: str, findings: list[Finding], now: datetime) -> list[Alert]:
    """Bring the patient's open alerts in line with the findings at ``now``; the alerts changed."""
    # Predicted alerts are the forecasts' (forecasting.warning): a later forecast resolves them.
    open_alerts = {
        a.problem: a
        for a in Alert.objects.filter(patient_id=patient_id, predicted=False).exclude(
            status=Alert.RESOLVED
        )
    }
    by_problem: dict[str, Finding] = {}
    for finding in findings:
        current = by_problem.get(finding.problem)
        if current is None or finding.severity > current.severity:
            by_problem[finding.problem] = finding
    changed = []
    for problem, finding in by_problem.items():
        alert = open_alerts.get(problem)
        if alert is None:
            alert = Alert.objects.create(
                patient_id=patient_id,
                problem=problem,
                rule=finding.rule,
                severity=finding.severity,
                summary=finding.summary[:300],
                opened=now,
                last_seen=now,
                evidence=list(finding.evidence),
            )
            _flag(alert, finding)
            alert.save(update_fields=["flag_id"])
            changed.append(alert)
            continue
        alert.last_seen = now
        if finding.severity > alert.severity:
            alert.severity, alert.summary, alert.lower_since = (
                finding.severity,
                finding.summary[:300],
                None,
            )
            alert.status = Alert.ACTIVE
            alert.evidence = list(finding.evidence)
            _flag(alert, finding)
            changed.append(alert)
        elif finding.severity < alert.severity:
            if alert.lower_since is None:
                alert.lower_since = now
            elif now - alert.lower_since >= DEESCALATE_AFTER:
                alert.severity, alert.summary, alert.lower_since = (
                    finding.severity,
                    finding.summary[:300],
                    None,
                )
                _flag(alert, finding)
                changed.append(alert)
        else:
            alert.lower_since = None
            if finding.summary != alert.summary:
                restated = _headline(finding.summary) != _headline(alert.summary)
                alert.summary = finding.summary[:300]
                if restated:
                    # Same severity, another score (NEWS2 5 → 6): the Flag a FHIR client reads
                    # says so. Values that move within one score do not make a new version.
                    alert.evidence = list(finding.evidence)
                    _flag(alert, finding)
                    changed.append(alert)
        alert.save()
    for problem, alert in open_alerts.items():
        if problem in by_problem or now - alert.last_seen < CALM_PERIOD:
            continue
        resolve(alert, now)
        changed.append(alert)
    return changed


def resolve(alert: Alert, now: datetime) -> None:
    alert.status, alert.resolved = Alert.RESOLVED, now
    _flag(alert, _finding_of(alert), end=now)
    alert.save()
