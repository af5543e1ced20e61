"""What makes twins move: every committed write that concerns a patient queues a refresh (one
at a time per patient: ``debounce``)."""

from __future__ import annotations

import logging

from django.db import transaction

from fhir_api.models import ReferenceIndex

from . import debounce

log = logging.getLogger(__name__)
WATCHED = {"Observation"}


def _queue(patient_ids) -> None:
    """Publish a refresh of each patient, unless one is queued and has not started yet
    (``debounce``: it will read what was just committed)."""
    from .tasks import refresh_twin

    for patient_id in debounce.claim(sorted(set(patient_ids))):
        try:
            refresh_twin.delay(patient_id)
        except Exception:  # a twin that fails to update must not fail the write that fed it
            debounce.release(patient_id)  # not queued after all: the next write tries again
            log.exception("could not refresh the twin of Patient/%s", patient_id)


def _revise(logical_id: str, version_id: int) -> None:
    from .tasks import revise_twin

    try:
        revise_twin.delay(logical_id, version_id)
    except Exception:  # as for a refresh: the write that changed the reading stands
        log.exception("could not revise the twins after Observation/%s", logical_id)


def on_resource(
    sender,
    resource_type: str,
    logical_id: str,
    bulk: bool = False,
    index=None,
    version_id: int = 1,
    deleted: bool = False,
    **kwargs,
) -> None:
    """A single write through the FHIR API (an EHR, a gateway's bundle).

    The patients are the targets of the ``subject`` reference: read from the index rows the
    write sends along (``index``, no query), else from the index tables. An update or delete
    of an Observation also revises what the twin counted of its earlier version
    (``services.revise``: hourly aggregates, latest value, baselines).
    """
    if bulk or resource_type not in WATCHED:
        return
    from .services import refreshing

    if refreshing():  # the twin's own NEWS2 score, committed by a refresh
        return
    if deleted or version_id > 1:
        _revise(logical_id, version_id)
    if deleted:  # the index rows went with it: the revision found the patient
        return
    if index is not None:
        # ReferenceIndex rows are (param, target_type, target_id, …) (search.extract.COLUMNS).
        rows = index.rows.get(ReferenceIndex, ())
        _queue([r[2] for r in rows if r[0] == "subject" and r[1] == "Patient"])
        return
    patients = ReferenceIndex.objects.filter(
        resource__resource_type=resource_type,
        resource__logical_id=logical_id,
        param="subject",
        target_type="Patient",
    ).values_list("target_id", flat=True)
    _queue(list(patients))


def on_readings(sender, patient_ids, **kwargs) -> None:
    """A batch of device readings (devices.signals.readings_stored), once per batch."""
    transaction.on_commit(lambda: _queue(patient_ids))
