"""Write paths of the twins app: keeping each twin in step, lifecycle changes, alert triage.

``refresh`` is the one way a twin learns: under a row lock it reads the patient's Observations
above its safe watermark that it has not applied yet, applies them (``state.apply``: constant
work per reading), updates baselines for vitals that started a new hour, runs the rules at the
twin's clock (the newest reading's time) and reconciles alerts. It is idempotent and
order-independent: two refreshes of one patient, in any order, apply each Observation once.
Row ids come from a sequence at insert and two writers can commit in the reverse order of their
ids, so the safe watermark (``settled_upto``) moves only past rows older than
TWIN_SETTLE_SECONDS and than the oldest transaction still writing; the ids applied above it
are kept (``applied_above``), and a reading committed late, below an id already applied, is
applied by the next refresh. Celery runs it (``tasks``), queued after the commit of every
write that concerns the patient.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Case, F, Max, Q, TextField, Value, When
from django.utils import timezone

from fhir_api import json_io
from fhir_api import services as store
from fhir_api.exceptions import BadRequest, NotFound
from fhir_api.models import DateIndex, ReferenceIndex, Resource, ResourceVersion, TokenIndex
from fhir_api.search.dates import format_instant, parse_interval
from fhir_api.validation import ID_RE

from . import alerts, fhir, rules, state
from .models import STAGES, Alert, AlertAction, LifecycleEvent, PatientTwin, VitalHour
from .series import codes_for
from .vitals import effective, readings_of

log = logging.getLogger(__name__)
MAX_PER_REFRESH = 20_000
NEWS2_EVERY = timedelta(minutes=15)


def _new_observations(
    patient_id: str, settled: int, applied: frozenset[int] = frozenset(), cutoff=None
) -> tuple[list[tuple[int, str, str]], int | None]:
    """The patient's Observations above the safe watermark ``settled``: (id, logical id, JSON)
    of those not in ``applied``, oldest id first (the applied ones are re-read without their
    content); and the highest id of them all stored at or before ``cutoff`` (None: none)."""
    pks = ReferenceIndex.objects.filter(
        resource_type="Observation",
        param="subject",
        target_type="Patient",
        target_id=patient_id,
        resource_id__gt=settled,
    ).values("resource_id")
    body: Any = F("content")
    if applied:
        body = Case(
            When(pk__in=list(applied), then=Value("")), default=body, output_field=TextField()
        )
    old: Any = Value(False)
    if cutoff is not None:
        old = Case(
            When(last_updated__lte=cutoff, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
    rows = (
        Resource.objects.filter(pk__in=pks, deleted=False)
        .order_by("pk")
        .annotate(body=body, old=old)
        .values_list("pk", "old", "logical_id", "body")[: MAX_PER_REFRESH + len(applied)]
    )
    new, oldest = [], None
    for pk, stored_before, logical_id, content in rows:
        if stored_before:
            oldest = pk
        if pk not in applied:
            new.append((pk, logical_id, content))
    return new, oldest


def _oldest_writer() -> datetime | None:
    """When the oldest other transaction still writing to this database began (PostgreSQL):
    the rows it inserted have ids allocated after that, and commit later. One open longer than
    TWIN_SETTLE_MAX_SECONDS (a session left idle in a transaction) no longer holds the
    watermarks of every twin back."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(xact_start) FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
            " AND pid <> pg_backend_pid() AND datname = current_database()"
            " AND xact_start > now() - make_interval(secs => %s)",
            [settings.TWIN_SETTLE_MAX_SECONDS],
        )
        return cursor.fetchone()[0]


def _cutoff(since: datetime) -> datetime:
    """Rows stored at or before this are settled: TWIN_SETTLE_SECONDS before ``since`` (the
    older of now and the start of the oldest transaction still writing, read before the rows).
    Ids come from a sequence at insert, so every row with a lower id than a settled one was
    inserted before it, by a transaction that has ended since."""
    # SQLite lets one transaction write at a time, from its first insert to its commit: ids
    # commit in their order, and every row below a visible one is visible.
    settle = 0 if connection.vendor == "sqlite" else settings.TWIN_SETTLE_SECONDS
    return since - timedelta(seconds=settle)


def _settle(twin: PatientTwin, settled: int | None) -> None:
    """Move the safe watermark to ``settled``; the ids applied above it stay in
    ``applied_above``."""
    if settled is not None and settled > twin.settled_upto:
        twin.settled_upto = settled
    twin.applied_above = sorted(pk for pk in twin.applied_above if pk > twin.settled_upto)


def has_applied(twin: PatientTwin, pk: int) -> bool:
    """Whether the twin has applied the store's row ``pk`` (an Observation of its patient)."""
    return pk <= twin.settled_upto or pk in twin.applied_above


def hourly_means(patient_id: str, clock: datetime):
    """``means(vital, hours)``: the vital's hourly means over the last ``hours`` hours, oldest
    first. The rows of every vital for a span are read once, at the first question."""
    read: dict[int, dict[str, list[float]]] = {}

    def means(vital: str, hours: int) -> list[float]:
        if hours not in read:
            since = (clock - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
            rows = (
                VitalHour.objects.filter(patient_id=patient_id, hour__gte=since)
                .order_by("hour")
                .values_list("vital", "total", "n")
            )
            by_vital: dict[str, list[float]] = {}
            for name, total, n in rows:
                if n:
                    by_vital.setdefault(name, []).append(total / n)
            read[hours] = by_vital
        return read[hours].get(vital, [])

    return means


def twin_for(patient_id: str) -> PatientTwin:
    # Not a FHIR id (e.g. a NUL byte, which PostgreSQL refuses in a query): no such Patient.
    if (
        not ID_RE.match(patient_id)
        or not Resource.objects.filter(
            resource_type="Patient", logical_id=patient_id, deleted=False
        ).exists()
    ):
        raise NotFound(f"Patient/{patient_id} is not known")
    twin, _ = PatientTwin.objects.get_or_create(patient_id=patient_id)
    return twin


_refreshing = threading.local()


def refreshing() -> bool:
    """True in a refresh, until the commit of what it wrote has been announced: the twin's own
    Observations (NEWS2 scores) carry nothing it follows, so they queue no refresh of it."""
    return getattr(_refreshing, "active", False)


def refresh(patient_id: str, *, now: datetime | None = None) -> PatientTwin | None:
    """Apply what is new for the patient and run the rules; see the module docstring."""
    outer = refreshing()
    _refreshing.active = True
    try:
        return _refresh(patient_id, now)
    finally:
        _refreshing.active = outer


def _refresh(patient_id: str, now: datetime | None) -> PatientTwin | None:
    with transaction.atomic():
        twin, _ = PatientTwin.objects.get_or_create(patient_id=patient_id)
        twin = PatientTwin.objects.select_for_update().get(pk=twin.pk)
        since = timezone.now()
        oldest = _oldest_writer()  # before the rows are read: see _cutoff
        if oldest is not None:
            since = min(since, oldest)
        before = (twin.settled_upto, len(twin.applied_above))
        rows, settled = _new_observations(
            patient_id, twin.settled_upto, frozenset(twin.applied_above), _cutoff(since)
        )
        if rows:
            twin.applied_above = [*twin.applied_above, *(pk for pk, _id, _body in rows)]
            twin.applied_upto = max(twin.applied_upto, rows[-1][0])
        _settle(twin, settled)
        if not rows and now is None:
            if (twin.settled_upto, len(twin.applied_above)) != before:
                twin.save(update_fields=["settled_upto", "applied_above", "updated"])
            return twin
        batch = state.Batch()
        observations = [(logical_id, json_io.loads(body)) for _pk, logical_id, body in rows]
        state.apply(twin.state, observations, batch)
        if not batch.applied and now is None:
            # Nothing the twin follows (e.g. its own NEWS2 scores, which queue a refresh like any
            # Observation): the state and its clock are as the last evaluation left them, so
            # the rules would find the same; only the watermarks move.
            twin.save(update_fields=["applied_upto", "settled_upto", "applied_above", "updated"])
            return twin
        new_hours = batch.save(patient_id)
        times = [item["time"] for item in twin.state.get("latest", {}).values()]
        times += [e["time"] for e in twin.state.get("events", {}).values()]
        clock = max((parse_interval(t).low for t in times), default=timezone.now())
        if now is not None:
            clock = max(clock, now)
        twin.state["clock"] = format_instant(clock)
        due = new_hours & set(state.BASELINED)
        if due:
            twin.state.setdefault("baseline", {}).update(state.baselines(patient_id, due, clock))
        if rows and twin.stage == "registered":
            _set_stage(twin, "monitored", by="twin", why="first readings received", at=clock)
        _evaluate(twin, clock)
        twin.save()
        return twin


def _evaluate(twin: PatientTwin, clock: datetime) -> None:
    ctx = rules.Context(
        state=twin.state,
        now=clock,
        scale=twin.news2_scale,
        on_oxygen=twin.on_oxygen,
        consciousness=twin.consciousness,
        thresholds=twin.thresholds or {},
        hourly=hourly_means(twin.patient_id, clock),
    )
    findings = rules.evaluate(ctx)
    score = ctx.news2
    assert score is not None
    previous = twin.news2 or {}
    summary = {
        "total": score.total,
        "band": score.band,
        "colour": score.colour,
        "partial": score.partial,
        "missing": score.missing,
        "assumed": score.assumed,
        "components": score.components,
        "response": score.response,
        "monitoring": score.monitoring,
        "time": format_instant(clock),
    }
    has_inputs = len(score.missing) < 5
    changed = (previous.get("total"), previous.get("band"), previous.get("partial")) != (
        score.total,
        score.band,
        score.partial,
    )
    due = (
        not previous.get("written")
        or clock - parse_interval(previous["written"]).low >= NEWS2_EVERY
    )
    if has_inputs and (changed or due):
        derived = list(
            ctx.evidence(
                "respiratory_rate",
                "oxygen_saturation",
                "systolic",
                "heart_rate",
                "body_temperature",
            )
        )
        summary["observation"] = fhir.news2_observation(twin.patient_id, score, clock, derived)
        summary["written"] = format_instant(clock)
        if previous.get("band") != score.band:
            summary["risk_assessment"] = fhir.risk_assessment(
                twin.patient_id, score, clock, summary["observation"]
            )
    else:
        summary["observation"] = previous.get("observation")
        summary["written"] = previous.get("written")
    twin.news2 = summary if has_inputs else None
    alerts.reconcile(twin.patient_id, findings, clock)
    twin.risk = ward_rank(twin)


# The severity a NEWS2 band warrants, as the NEWS2 rule raises it (twins.rules.news2_rule).
BAND_SEVERITY = {"low": 0, "low-medium": 1, "medium": 2, "high": 3}


def ward_rank(twin: PatientTwin) -> int:
    """The ward overview's sort key (highest first), from the current NEWS2 and open alerts.

    First the severity the patient warrants: the higher of the NEWS2 band's and the worst open
    alert's. An alert keeps the severity ``alerts.reconcile`` holds it at while it de-escalates
    (a lower severity counts only after DEESCALATE_AFTER) and counts until it closes (resolved
    after CALM_PERIOD without a finding, or by a clinician): a patient whose readings just
    improved stays with those as ill until the alert says otherwise, as the alert's Flag does.
    Then the NEWS2 total, then the worst open alert's own severity.
    """
    worst = (
        Alert.objects.filter(patient_id=twin.patient_id)
        .exclude(status=Alert.RESOLVED)
        .aggregate(m=Max("severity"))["m"]
        or 0
    )
    news2 = twin.news2 or {}
    total = news2.get("total") or 0
    warranted = max(worst, BAND_SEVERITY.get(news2.get("band") or "low", 0))
    return warranted * 1000 + total * 10 + worst


def _set_stage(
    twin: PatientTwin, stage: str, *, by: str, why: str, at: datetime | None = None
) -> LifecycleEvent:
    at = at or timezone.now()
    reference = _mirror_stage(twin, stage, at)
    event = LifecycleEvent.objects.create(
        patient_id=twin.patient_id,
        from_stage=twin.stage,
        to_stage=stage,
        at=at,
        by=by,
        why=why,
        fhir_reference=reference,
    )
    twin.stage, twin.stage_since = stage, at
    return event


def _mirror_stage(twin: PatientTwin, stage: str, at: datetime) -> str:
    """Monitoring is an EpisodeOfCare (hl7.org/fhir/R4B/episodeofcare.html): active while
    monitored, finished on discharge or death; a hospital stay is an Encounter."""
    when = format_instant(at)
    if stage == "hospitalised":
        data = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "IMP",
                "display": "inpatient encounter",
            },
            "subject": {"reference": f"Patient/{twin.patient_id}"},
            "period": {"start": when},
        }
        return "Encounter/" + store.create("Encounter", data).resource.logical_id
    episode_id = twin.state.get("episode_of_care")
    status = {"discharged": "finished", "deceased": "finished", "registered": "planned"}.get(
        stage, "active"
    )
    period: dict[str, str] = {"start": twin.state.get("episode_start", when)}
    if status == "finished":
        period["end"] = when
    data = {
        "resourceType": "EpisodeOfCare",
        "status": status,
        "type": [{"text": "CloudDTH remote monitoring"}],
        "patient": {"reference": f"Patient/{twin.patient_id}"},
        "period": period,
    }
    if episode_id:
        data["id"] = episode_id
        store.update("EpisodeOfCare", episode_id, data)
    else:
        episode_id = store.create("EpisodeOfCare", data).resource.logical_id
        twin.state["episode_of_care"], twin.state["episode_start"] = episode_id, when
    return f"EpisodeOfCare/{episode_id}"


def change_stage(patient_id: str, stage: str, *, by: str, why: str) -> LifecycleEvent:
    if stage not in dict(STAGES):
        raise BadRequest(f"Unknown lifecycle stage '{stage}'")
    with transaction.atomic():
        twin = twin_for(patient_id)
        twin = PatientTwin.objects.select_for_update().get(pk=twin.pk)
        event = _set_stage(twin, stage, by=by, why=why)
        twin.save()
        return event


def update_settings(
    patient_id: str, *, scale: int, on_oxygen: bool | None, consciousness: str, thresholds: dict
) -> PatientTwin:
    """A clinician's settings; the rules run again at once with them."""
    if scale not in (1, 2):
        raise BadRequest("NEWS2 scale is 1 or 2")
    with transaction.atomic():
        twin = twin_for(patient_id)
        twin = PatientTwin.objects.select_for_update().get(pk=twin.pk)
        twin.news2_scale, twin.on_oxygen, twin.consciousness, twin.thresholds = (
            scale,
            on_oxygen,
            consciousness,
            thresholds,
        )
        clock = (
            parse_interval(twin.state["clock"]).low if twin.state.get("clock") else timezone.now()
        )
        _evaluate(twin, clock)
        twin.save()
        return twin


def act_on_alert(
    alert_id: int, action: str, user, comment: str = "", assignee: str = ""
) -> AlertAction:
    """Acknowledge, assign, escalate, resolve or comment; each recorded as a FHIR Provenance."""
    if action not in ("acknowledge", "assign", "escalate", "resolve", "comment"):
        raise BadRequest(f"Unknown alert action '{action}'")
    patient_id = Alert.objects.values_list("patient_id", flat=True).get(pk=alert_id)
    with transaction.atomic():
        # The twin's row first, then the alert's, in the order a refresh takes them.
        twin = PatientTwin.objects.select_for_update().filter(patient_id=patient_id).first()
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        now = timezone.now()
        if alert.status == Alert.RESOLVED and action != "comment":
            raise BadRequest("The alert is resolved")
        if action == "acknowledge":
            alert.status = Alert.ACKNOWLEDGED
        elif action == "assign":
            alert.assigned_to = assignee or user.get_username()
        elif action == "escalate":
            alert.severity = min(3, alert.severity + 1)
            alert.status = Alert.ACTIVE
            alerts._flag(alert, alerts._finding_of(alert))
        elif action == "resolve":
            alerts.resolve(alert, now)
        alert.save()
        if twin is not None and action in ("escalate", "resolve"):  # the ward follows at once
            twin.risk = ward_rank(twin)
            twin.save(update_fields=["risk"])
        practitioner = fhir.practitioner_for(user.get_username(), user.get_full_name())
        reference = fhir.provenance(
            f"Flag/{alert.flag_id}", action, practitioner, now, comment or assignee
        )
        return AlertAction.objects.create(
            alert=alert,
            action=action,
            by=user,
            comment=comment or assignee,
            fhir_reference=f"Provenance/{reference}",
        )


# Readings a twin keeps in its hourly aggregates (device events and battery levels are not).
_NOT_AGGREGATED = {"fall", "irregular_rhythm", "battery"}
LATEST_SCAN = 50


def _readings(obs: dict | None, patient_id: str) -> list[tuple[str, datetime, float]]:
    """(vital, effective time, value) of the readings ``obs`` gave the patient's aggregates."""
    if not obs:
        return []
    subject = obs.get("subject") if isinstance(obs.get("subject"), dict) else {}
    at = effective(obs)
    if subject.get("reference") != f"Patient/{patient_id}" or at is None:
        return []
    return [
        (vital, at, value)
        for vital, value in readings_of(obs)
        if vital not in _NOT_AGGREGATED and value is not None
    ]


def _aggregated(obs: dict | None, patient_id: str) -> list[tuple[str, datetime, float]]:
    """(vital, hour, value) of the readings ``obs`` gave the patient's hourly aggregates."""
    return [
        (vital, at.replace(minute=0, second=0, microsecond=0), value)
        for vital, at, value in _readings(obs, patient_id)
    ]


def _subjects(*contents: dict | None) -> set[str]:
    out = set()
    for obs in contents:
        subject = (obs or {}).get("subject")
        reference = subject.get("reference", "") if isinstance(subject, dict) else ""
        if reference.startswith("Patient/"):
            out.add(reference.split("/", 1)[1])
    return out


def _applied(patient_id: str, codes: list[str], twin: PatientTwin):
    """The patient's current Observations with one of ``codes`` the twin has applied."""
    coded = TokenIndex.objects.filter(
        patient=patient_id, resource_type="Observation", param="code", code__in=codes
    ).values("resource_id")
    return DateIndex.objects.filter(
        patient=patient_id,
        resource_type="Observation",
        param="date",
        resource_id__in=coded,
        resource__deleted=False,
    ).filter(Q(resource_id__lte=twin.settled_upto) | Q(resource_id__in=twin.applied_above))


def _recount(patient_id: str, vital: str, hour: datetime, twin: PatientTwin) -> None:
    """The hourly aggregate of ``vital`` at ``hour`` again from the stored Observations."""
    contents = Resource.objects.filter(
        pk__in=_applied(patient_id, codes_for(vital), twin)
        .filter(low__gte=hour, low__lt=hour + timedelta(hours=1))
        .values("resource_id")
    ).values_list("content", flat=True)
    values = [
        value
        for content in contents
        for name, at, value in _aggregated(json_io.loads(content), patient_id)
        if name == vital and at == hour
    ]
    rows = VitalHour.objects.filter(patient_id=patient_id, vital=vital, hour=hour)
    if not values:
        rows.delete()
        return
    VitalHour.objects.update_or_create(
        patient_id=patient_id,
        vital=vital,
        hour=hour,
        defaults={"n": len(values), "total": sum(values), "low": min(values), "high": max(values)},
    )


def _newest(patient_id: str, vital: str, twin: PatientTwin) -> dict | None:
    """The twin's ``latest`` entry of ``vital`` from the stored Observations, or None."""
    rows = (
        _applied(patient_id, codes_for(vital), twin)
        .order_by("-low", "-resource_id")
        .values_list("resource__logical_id", "resource__content")[:LATEST_SCAN]
    )
    for logical_id, content in rows:
        obs = json_io.loads(content)
        at = effective(obs)
        value = next((v for name, v in readings_of(obs) if name == vital), None)
        if at is not None and value is not None:
            return {"value": value, "time": format_instant(at), "observation": logical_id}
    return None


def _trend(patient_id: str, vital: str, twin: PatientTwin, clock: datetime) -> dict | None:
    """The twin's ``trend`` of ``vital`` computed again from what is stored now: the hourly
    aggregates up to a few hours before ``clock``, then the readings since (``state``)."""
    recent = (clock - timedelta(hours=state.TREND_RAW_HOURS)).replace(
        minute=0, second=0, microsecond=0
    )
    hourly = [
        (hour, total / n)
        for hour, total, n in VitalHour.objects.filter(
            patient_id=patient_id,
            vital=vital,
            hour__gte=clock - timedelta(days=state.TREND_DAYS),
            hour__lt=recent,
        ).values_list("hour", "total", "n")
        if n
    ]
    contents = Resource.objects.filter(
        pk__in=_applied(patient_id, codes_for(vital), twin)
        .filter(low__gte=recent)
        .values("resource_id")
    ).values_list("content", flat=True)
    readings = [
        (at, value)
        for content in contents
        for name, at, value in _readings(json_io.loads(content), patient_id)
        if name == vital
    ]
    return state.recomputed_trend(hourly, readings)


def revise(observation_id: str, version_id: int) -> list[str]:
    """An Observation the twin has applied was updated (a corrected value, entered-in-error) or
    deleted: the hourly aggregates of the hours its previous and current versions touched are
    counted again from the stored Observations, the latest value it was is found again, the
    baselines and trends (exponentially weighted means) of its vitals are computed again and the
    rules run again, so that the twin (NEWS2, baselines, trends, charts) and the forecasts built
    on its aggregates no longer count it. Returns the patients revised.

    An Observation the twin has not applied yet needs nothing: the refresh applies its
    current version (or nothing, once deleted)."""
    versions = dict(
        ResourceVersion.objects.filter(
            resource_type="Observation",
            logical_id=observation_id,
            version_id__in=[version_id - 1, version_id],
        ).values_list("version_id", "content")
    )
    current = Resource.objects.filter(
        resource_type="Observation", logical_id=observation_id
    ).first()
    if current is None:
        return []
    before = json_io.loads(versions[version_id - 1]) if versions.get(version_id - 1) else None
    after = json_io.loads(versions[version_id]) if versions.get(version_id) else None
    revised = []
    for patient_id in sorted(_subjects(before, after)):
        if _revise(patient_id, current.pk, observation_id, before, after):
            revised.append(patient_id)
    return revised


def _revise(
    patient_id: str, pk: int, observation_id: str, before: dict | None, after: dict | None
) -> bool:
    outer = refreshing()
    _refreshing.active = True  # the twin's own writes (NEWS2) queue no refresh of it
    try:
        with transaction.atomic():
            twin = PatientTwin.objects.select_for_update().filter(patient_id=patient_id).first()
            if twin is None or not has_applied(twin, pk):
                return False
            touched = {
                (vital, hour)
                for vital, hour, _value in _aggregated(before, patient_id)
                + _aggregated(after, patient_id)
            }
            if not touched:
                return False
            for vital, hour in sorted(touched):
                _recount(patient_id, vital, hour, twin)
            vitals = {vital for vital, _hour in touched}
            latest = twin.state.setdefault("latest", {})
            for vital in vitals:
                if (latest.get(vital) or {}).get("observation") == observation_id:
                    newest = _newest(patient_id, vital, twin)
                    if newest is None:
                        latest.pop(vital, None)
                    else:
                        latest[vital] = newest
            clock = (
                parse_interval(twin.state["clock"]).low
                if twin.state.get("clock")
                else timezone.now()
            )
            trend = twin.state.setdefault("trend", {})
            for vital in vitals:
                again = _trend(patient_id, vital, twin, clock)
                if again is None:
                    trend.pop(vital, None)
                else:
                    trend[vital] = again
            baselined = vitals & set(state.BASELINED)
            if baselined:
                twin.state.setdefault("baseline", {}).update(
                    state.baselines(patient_id, baselined, clock)
                )
            _evaluate(twin, clock)
            twin.save()
            return True
    finally:
        _refreshing.active = outer
