"""Celery tasks of the twins app: they take ids, are idempotent, and re-fetch under lock."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import debounce
from .models import PatientTwin
from .services import refresh, revise


@shared_task(acks_late=True, max_retries=5, default_retry_delay=2)
def refresh_twin(patient_id: str) -> None:
    # Before anything is read: a write committed from now on queues a refresh of its own.
    debounce.release(patient_id)
    refresh(patient_id)


@shared_task(acks_late=True, max_retries=5, default_retry_delay=2)
def revise_twin(observation_id: str, version_id: int) -> list[str]:
    """An applied Observation was updated or deleted: its hours are counted again."""
    return revise(observation_id, version_id)


@shared_task
def check_devices() -> int:
    """Every minute (celery beat): re-run the rules at the wall clock, so a device that went
    silent is flagged even though no reading arrives to say so."""
    count = 0
    for patient_id in PatientTwin.objects.filter(
        stage__in=["monitored", "acute", "recovering"]
    ).values_list("patient_id", flat=True):
        refresh(patient_id, now=timezone.now())
        count += 1
    return count
