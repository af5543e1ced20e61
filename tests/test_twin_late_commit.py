"""A reading committed late, after one with a higher row id, is still applied by the twin.

Row ids come from a sequence when a row is inserted and the transaction commits later, so two
writers of one patient's Observations (two devices, a device and an EHR) can commit in the
reverse order of their ids. A refresh run between the two commits sees the higher id; the
lower one, committed next, must still be applied by the following refresh, and nothing may be
counted twice however often the twin refreshes.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from fhir_api import services as store
from twins import services
from twins.models import Alert, PatientTwin, VitalHour

from .search_support import VITAL_SIGNS
from .twin_views_support import make_patient


def heart_rate(patient: str, value: float, minutes_ago: float) -> dict:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": at.isoformat(),
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def counted(patient: str) -> tuple[int, float]:
    """(readings, sum of values) in the twin's hourly heart-rate aggregates."""
    totals = VitalHour.objects.filter(patient_id=patient, vital="heart_rate").aggregate(
        n=Sum("n"), total=Sum("total")
    )
    return totals["n"] or 0, totals["total"] or 0.0


def commit(data: dict) -> int:
    """Create and commit (the twin's refresh runs after the commit, in process)."""
    with transaction.atomic():
        return store.create("Observation", data).resource.pk


@pytest.mark.parametrize("settle", [5, 0], ids=["settle-5s", "settle-0s"])
def test_a_reading_committed_after_a_higher_id_is_applied_once(transactional_db, settings, settle):
    """Two connections: the first inserts (lower id) and holds its transaction open while the
    second inserts (higher id) and commits, its refresh running; then the first commits."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer at a time: ids commit in their order")
    settings.TWIN_SETTLE_SECONDS = settle  # 0: the oldest open writer alone holds the watermark
    patient = make_patient("Late")
    inserted, release, done = threading.Event(), threading.Event(), threading.Event()
    late: dict[str, int] = {}
    failure: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                late["pk"] = store.create("Observation", heart_rate(patient, 131, 5)).resource.pk
                inserted.set()
                assert release.wait(60)
            done.set()
        except BaseException as error:  # reported by the main thread
            failure.append(error)
            inserted.set()
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert inserted.wait(60) and not failure, failure
        early = commit(heart_rate(patient, 80, 10))
        assert early > late["pk"]  # committed first, with the higher id
        services.refresh(patient)  # a refresh between the two commits, besides the commit's
        twin = PatientTwin.objects.get(patient_id=patient)
        # Past the late reading's id (and the twin's own NEWS2 score's), without it.
        assert twin.applied_upto >= early
        assert services.has_applied(twin, early) and not services.has_applied(twin, late["pk"])
        assert twin.state["latest"]["heart_rate"]["value"] == 80
        assert counted(patient) == (1, 80)
    finally:
        release.set()
        writer.join(60)
    assert done.is_set() and not failure, failure

    # The late reading's own refresh (queued after its commit) applies it.
    services.refresh(patient)
    twin = PatientTwin.objects.get(patient_id=patient)
    assert counted(patient) == (2, 211)
    assert twin.state["latest"]["heart_rate"]["value"] == 131
    assert twin.state["latest"]["heart_rate"]["observation"]
    assert Alert.objects.filter(patient_id=patient).exclude(status=Alert.RESOLVED).exists()
    assert services.has_applied(twin, late["pk"]) and services.has_applied(twin, early)

    # Refreshing again, as often as anything asks, applies neither again.
    for _ in range(3):
        services.refresh(patient)
    assert counted(patient) == (2, 211)


def test_refreshing_again_applies_nothing_twice(transactional_db, settings):
    patient = make_patient("Again")
    first = [commit(heart_rate(patient, 70 + i, 30 - i)) for i in range(3)]
    services.refresh(patient)  # (and the refresh each commit queued)
    twin = PatientTwin.objects.get(patient_id=patient)
    # Within the settling window: applied, kept above the safe watermark.
    assert counted(patient) == (3, 213)
    assert twin.applied_upto == first[-1]
    assert all(services.has_applied(twin, pk) for pk in first)
    assert set(first) <= set(twin.applied_above) or twin.settled_upto >= first[-1]

    services.refresh(patient)
    services.refresh(patient, now=timezone.now())
    assert counted(patient) == (3, 213)

    # Once settled, the safe watermark passes them and forgets their ids; still none twice.
    settings.TWIN_SETTLE_SECONDS = 0
    services.refresh(patient)
    twin = PatientTwin.objects.get(patient_id=patient)
    # (the twin's own NEWS2 score is an Observation of the patient too, with the highest id)
    assert twin.settled_upto == twin.applied_upto > first[-1]
    assert twin.applied_above == []
    more = [commit(heart_rate(patient, 90 + i, 20 - i)) for i in range(2)]
    services.refresh(patient)
    for _ in range(2):
        services.refresh(patient)
        services.refresh(patient, now=timezone.now())
    twin = PatientTwin.objects.get(patient_id=patient)
    assert counted(patient) == (5, 213 + 181)
    assert twin.settled_upto == twin.applied_upto >= more[-1]
    assert twin.applied_above == []
