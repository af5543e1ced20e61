"""Write paths of the device registry and of reading ingest.

``ingest`` is where every input ends (HTTP JSON, Open mHealth, MQTT, file imports, replays of
dead letters): readings are checked and converted (``readings.check``), attributed to the
patient who wore the device at each reading's time (``Pairing``), mapped to Observations
with the interpretation and reference range of each value (``ranges``, from the patient's
settings, read once per batch), de-duplicated by their deterministic identifier, and written in
one transaction with their index rows through ``fhir_api.bulk``. Every rejected reading goes to
``DeadLetter`` with its reason in the same transaction; nothing is dropped. The twin is told
once per batch, after commit (``signals.readings_stored``). ``ingest_many`` does the same for
several devices' readings at once (an MQTT consumer's batch), in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone

from fhir_api import bulk, json_io
from fhir_api import services as fhir_services
from fhir_api.exceptions import BadRequest, Conflict, NotFound
from fhir_api.models import Resource

from .indexrows import observation_rows
from .mapping import EUI64_SYSTEM
from .models import DeadLetter, Device, DeviceKey, Pairing, ReadingKey
from .ranges import Ranges, settings_for
from .readings import Checked, Reading, Rejected, check, identifier, observation
from .signals import readings_stored

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Parsed:
    """One item of a payload: the reading, or why it could not be read, and its raw form."""

    raw: Any
    reading: Reading | None = None
    error: str | None = None


@dataclass
class IngestResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"index", "reason"}
    observation_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": len(self.rejected),
            "rejections": self.rejected,
        }


# --- registry ----------------------------------------------------------------------------


def _device_resource(
    identifier: str, kind: str, model_name: str, manufacturer: str
) -> dict[str, Any]:
    """The FHIR Device (PHD IG: the sensor identified by its EUI-64 or serial)."""
    data: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [{"system": EUI64_SYSTEM, "value": identifier}],
        "status": "active",
        "serialNumber": identifier,
        "type": {
            "coding": [
                {
                    "system": "urn:iso:std:iso:11073:10101",
                    "code": "65573" if kind == Device.SENSOR else "531981",
                    "display": "MDC_MOC_VMS_MDS_SIMP"
                    if kind == Device.SENSOR
                    else "MDC_MOC_VMS_MDS_AHD",
                }
            ]
        },
    }
    if model_name:
        data["modelNumber"] = model_name
    if manufacturer:
        data["manufacturer"] = manufacturer
    return data


def register_device(
    identifier: str, *, kind: str = Device.SENSOR, model_name: str = "", manufacturer: str = ""
) -> Device:
    """Register a device (idempotent on its identifier): a FHIR Device and a registry row."""
    identifier = identifier.strip()
    if not identifier or len(identifier) > 100 or not identifier.isprintable():
        raise BadRequest(
            "A device identifier (serial or EUI-64) of 1 to 100 printable characters is needed"
        )
    if kind not in (Device.SENSOR, Device.GATEWAY):
        raise BadRequest(f"kind {kind!r} is not known: give {Device.SENSOR} or {Device.GATEWAY}")
    with transaction.atomic():
        existing = Device.objects.select_for_update().filter(identifier=identifier).first()
        if existing is not None:
            return existing
        resource = _device_resource(identifier, kind, model_name, manufacturer)
        outcome = fhir_services.create(
            "Device", resource, if_none_exist=f"identifier={EUI64_SYSTEM}|{identifier}"
        )
        return Device.objects.create(
            identifier=identifier,
            kind=kind,
            fhir_id=outcome.resource.logical_id,
            model_name=model_name,
            manufacturer=manufacturer,
        )


def issue_key(device: Device) -> str:
    """A new API key for the device; shown once, only its hash is kept."""
    return DeviceKey.issue(device)[1]


def revoke_keys(device: Device) -> int:
    return DeviceKey.objects.filter(device=device, revoked_at=None).update(
        revoked_at=timezone.now()
    )


def authenticate(key: str) -> Device | None:
    row = (
        DeviceKey.objects.select_related("device")
        .filter(key_hash=DeviceKey.hash_key(key), revoked_at=None)
        .first()
    )
    return row.device if row else None


def pair(
    device: Device,
    patient_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    by: str = "",
    reason: str = "",
) -> Pairing:
    """Pair the device to a patient from ``start`` (default now).

    Without ``end`` this is the current pairing, and an open pairing to someone else ends at
    ``start``. With ``end`` it records a past period (to attribute readings that arrived while
    nobody was paired), which may not overlap any other.
    """
    start = start or timezone.now()
    if end is not None and end <= start:
        raise BadRequest("A pairing must end after it starts")
    with transaction.atomic():
        Device.objects.select_for_update().get(pk=device.pk)
        if not Resource.objects.filter(
            resource_type="Patient", logical_id=patient_id, deleted=False
        ).exists():
            raise NotFound(f"Patient/{patient_id} is not known")
        if end is not None:
            overlapping = Pairing.objects.filter(device=device, start__lt=end).exclude(
                end__lte=start
            )
            if overlapping.exists():
                raise Conflict("The period overlaps another pairing of this device")
            return Pairing.objects.create(
                device=device,
                patient_id=patient_id,
                start=start,
                end=end,
                created_by=by,
                reason=reason,
            )
        if Pairing.objects.filter(device=device, start__gt=start).exists():
            raise Conflict("The device has a pairing that starts later: unpair that one first")
        current = Pairing.objects.filter(device=device, end=None).first()
        if current is not None:
            if current.patient_id == patient_id:
                return current
            current.end = start
            current.save(update_fields=["end"])
        return Pairing.objects.create(
            device=device, patient_id=patient_id, start=start, created_by=by, reason=reason
        )


def unpair(device: Device, *, end: datetime | None = None, by: str = "") -> Pairing | None:
    with transaction.atomic():
        current = Pairing.objects.select_for_update().filter(device=device, end=None).first()
        if current is None:
            return None
        current.end = end or timezone.now()
        if current.end < current.start:
            raise BadRequest("A pairing cannot end before it starts")
        current.save(update_fields=["end"])
        return current


# --- ingest -------------------------------------------------------------------------------


def _patient_at(pairings: list[Pairing], moment: datetime) -> str | None:
    for pairing in pairings:
        if pairing.covers(moment):
            return pairing.patient_id
    return None


def _claim(keys: list[str]) -> set[str]:
    """Claim reading keys; the ones this call claimed (the others are duplicates)."""
    if not keys:
        return set()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            values = ",".join(["(%s)"] * len(keys))
            cursor.execute(
                f"INSERT INTO devices_reading_key (key) VALUES {values}"
                " ON CONFLICT (key) DO NOTHING RETURNING key",
                keys,
            )
            return {row[0] for row in cursor.fetchall()}
    # SQLite runs one write transaction at a time (BEGIN IMMEDIATE), so look, then insert.
    existing = set(ReadingKey.objects.filter(key__in=keys).values_list("key", flat=True))
    fresh = [k for k in dict.fromkeys(keys) if k not in existing]
    ReadingKey.objects.bulk_create([ReadingKey(key=k) for k in fresh])
    return set(fresh)


def dead_letter(source: str, device_identifier: str, reason: str, payload: Any) -> DeadLetter:
    """Keep something that could not be stored, as it came, with why."""
    return DeadLetter.objects.create(**_letter(source, device_identifier, reason, payload))


def unauthenticated_letter(source: str, claimed: str, reason: str, payload: bytes) -> bool:
    """Keep, as a dead letter, what came without a valid device key, if it may be kept.

    A wearable whose key was revoked or mis-provisioned, or one not registered yet, still sends
    a patient's readings: they are kept, to be looked at and replayed. But anyone can send
    without a key, so within bounds: bodies of at most ``DEVICE_UNAUTHENTICATED_LETTER_BYTES``,
    and fewer than ``DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR`` dead letters from the last hour
    for the registered device named (``claimed``: the device the topic or body names), or, for
    devices not in the registry (or none named), that many from the last hour for all of them
    together. Beyond the bounds the sender is answered (401) and the server logs what it did not
    keep. Returns whether it was kept.
    """
    limit = django_settings.DEVICE_UNAUTHENTICATED_LETTER_BYTES
    per_hour = django_settings.DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR
    since = timezone.now() - timedelta(hours=1)
    recent = DeadLetter.objects.filter(received__gte=since)
    # No registered identifier has a NUL (and PostgreSQL takes none in a query).
    name = claimed.replace("\x00", "\\u0000")[:100]
    registered = "\x00" not in claimed and Device.objects.filter(identifier=name).exists()
    why = None
    if len(payload) > limit:
        why = f"the body is larger than {limit} bytes"
    elif registered:
        # Every letter of the device counts (the reason of one without a key can be any: bad
        # JSON is a 400); those sent with a valid key are kept whatever this says.
        count = recent.filter(device_identifier=name).count()
        if count >= per_hour:
            why = f"device '{claimed}' already has {count} dead letters from the last hour"
    else:
        count = recent.exclude(device_identifier__in=Device.objects.values("identifier")).count()
        if count >= per_hour:
            why = f"devices not in the registry already have {count} from the last hour"
    if why is not None:
        log.warning(
            "not kept: a %s message without a valid device key for %r: %s",
            source,
            claimed[:100],
            why,
        )
        return False
    dead_letter(source, claimed, reason, payload.decode("utf-8", "replace"))
    return True


def _letter(source: str, device_identifier: str, reason: str, payload: Any) -> dict[str, Any]:
    text = payload if isinstance(payload, str) else json_io.dumps(payload)
    # PostgreSQL's text holds no NUL: written as JSON writes it (\u0000), so the letter is kept.
    return {
        "source": source,
        "device_identifier": device_identifier.replace("\x00", "\\u0000")[:100],
        "reason": reason.replace("\x00", "\\u0000"),
        "payload": text.replace("\x00", "\\u0000"),
    }


def ingest(
    device: Device, items: list[Parsed], *, source: str, keep_rejected: bool = True
) -> IngestResult:
    """Store a batch of readings from one device; see the module docstring.

    ``keep_rejected=False`` is for replays, whose rejections stay on the dead letter replayed.
    """
    return ingest_many([(device, items, source)], keep_rejected=keep_rejected)[0]


@dataclass
class _Prepared:
    """One device's part of a batch, checked and mapped, before the write."""

    device: Device
    source: str
    result: IngestResult = field(default_factory=IngestResult)
    keyed: list[tuple[str, dict[str, Any], Checked]] = field(default_factory=list)
    rejections: list[tuple[int, str, Any]] = field(default_factory=list)


def ingest_many(
    parts: list[tuple[Device, list[Parsed], str]], *, keep_rejected: bool = True
) -> list[IngestResult]:
    """Store the readings of several devices (an MQTT consumer's batch of messages) in one
    transaction: the same rows and answers as ``ingest`` for each part, with one claim of
    reading keys, one bulk write and one dead-letter insert for them all. Each patient's
    settings and each device's pairings are read once (``devices.ranges``)."""
    # A batch's readings, Observations and index rows are many containers: no GC meanwhile.
    with bulk.gc_paused():
        return _ingest_many(parts, keep_rejected)


def _ingest_many(
    parts: list[tuple[Device, list[Parsed], str]], keep_rejected: bool
) -> list[IngestResult]:
    now = timezone.now()
    devices = {device.pk: device for device, _items, _source in parts}
    pairings: dict[int, list[Pairing]] = {pk: [] for pk in devices}
    for pairing in Pairing.objects.filter(device_id__in=list(devices)):
        pairings[pairing.device_id].append(pairing)
    paired = sorted({p.patient_id for ps in pairings.values() for p in ps})
    settings = settings_for(paired)
    ranges = {patient: Ranges(s) for patient, s in settings.items()}
    # A Patient deleted while a device was still paired to them: their readings become dead
    # letters (replayable once the pairing is corrected), never Observations of a deleted
    # Patient that $twin, $forecast and $everything answer 410 for.
    gone = set(
        Resource.objects.filter(
            resource_type="Patient", logical_id__in=paired, deleted=True
        ).values_list("logical_id", flat=True)
    )
    seen: set[str] = set()
    prepared = [
        _prepare(device, items, source, now, pairings[device.pk], ranges, seen, gone)
        for device, items, source in parts
    ]
    with transaction.atomic():
        keyed = [k for part in prepared for k in part.keyed]
        claimed = _claim([k for k, _o, _c in keyed])
        # The Observations are correct by construction (tests/test_device_mapping.py validates
        # every reading type against the R4B models), so the model validation is skipped here,
        # and so are their index rows (indexrows, tested equal to the generic extraction's).
        fresh = [(k, o, c) for k, o, c in keyed if k in claimed]
        written = (
            bulk.create_many(
                [o for _k, o, _c in fresh],
                validate=False,
                indexes=[observation_rows(c, o) for _k, o, c in fresh],
            )
            if fresh
            else []
        )
        ids = iter(w.logical_id for w in written)
        letters = []
        for part in prepared:
            stored = [(k, o, c) for k, o, c in part.keyed if k in claimed]
            result = part.result
            result.duplicate += len(part.keyed) - len(stored)
            result.observation_ids = [next(ids) for _ in stored]
            result.accepted = len(stored)
            identifier_ = part.device.identifier
            for index, reason, raw in part.rejections:
                payload = {"device": identifier_, "reading": raw}
                letters.append(DeadLetter(**_letter(part.source, identifier_, reason, payload)))
                result.rejected.append({"index": index, "reason": reason})
            _update_state(part.device, [c for _k, _o, c in stored], now)
            if stored:
                _announce(part.device, stored, result.observation_ids)
        if keep_rejected and letters:
            DeadLetter.objects.bulk_create(letters)
    return [part.result for part in prepared]


def _prepare(
    device: Device,
    items: list[Parsed],
    source: str,
    now: datetime,
    pairings: list[Pairing],
    ranges: dict[str, Ranges],
    seen: set[str],
    gone: set[str] = frozenset(),
) -> _Prepared:
    """Check, attribute, de-duplicate within the batch and map one device's readings."""
    part = _Prepared(device, source)
    for index, item in enumerate(items):
        if item.reading is None:
            part.rejections.append((index, item.error or "unreadable reading", item.raw))
            continue
        try:
            checked = check(item.reading, now)
        except Rejected as exc:
            part.rejections.append((index, str(exc), item.raw))
            continue
        patient = _patient_at(pairings, item.reading.time)
        if patient is None:
            part.rejections.append(
                (index, "the device was paired to no patient at the reading's time", item.raw)
            )
            continue
        if patient in gone:
            part.rejections.append(
                (
                    index,
                    f"Patient/{patient}, paired at the reading's time, has been deleted",
                    item.raw,
                )
            )
            continue
        key = identifier(device.identifier, patient, checked)
        if key in seen:
            part.result.duplicate += 1
            continue
        seen.add(key)
        judged = ranges.get(patient)
        if judged is None:  # a pairing made since the batch began
            judged = ranges[patient] = Ranges(settings_for([patient])[patient])
        obs = observation(
            checked, patient=patient, device_fhir_id=device.fhir_id, key=key, ranges=judged
        )
        part.keyed.append((key, obs, checked))
    return part


def _announce(device: Device, stored: list, ids: list[str]) -> None:
    """Tell the twin after commit, once per device and batch (``signals.readings_stored``)."""
    patients = sorted({o["subject"]["reference"].split("/", 1)[1] for _k, o, _c in stored})
    ids = list(ids)
    transaction.on_commit(
        lambda: readings_stored.send(
            sender=Device, device_id=device.pk, patient_ids=patients, observation_ids=ids
        )
    )


def _update_state(device: Device, stored: list[Checked], now: datetime) -> None:
    fields = {"last_seen": now}
    battery = [c for c in stored if c.reading.type == "battery"]
    if battery:
        latest = max(battery, key=lambda c: c.reading.time)
        if device.battery_at is None or latest.reading.time >= device.battery_at:
            fields["battery_level"] = float(latest.value)
            fields["battery_at"] = latest.reading.time
    Device.objects.filter(pk=device.pk).update(**fields)
    for name, value in fields.items():
        setattr(device, name, value)


def replay(letter: DeadLetter, *, by: str = "") -> IngestResult:
    """Run a dead letter through ingest again (after the device was paired, say)."""
    from .adapters import parse_payload

    payload = json_io.loads(letter.payload)
    device_identifier = payload.get("device") if isinstance(payload, dict) else None
    device = Device.objects.filter(identifier=device_identifier or letter.device_identifier).first()
    if device is None:
        raise NotFound(
            f"Device '{device_identifier or letter.device_identifier}' is not registered"
        )
    reading = payload.get("reading") if isinstance(payload, dict) and "reading" in payload else None
    body = {"device": device.identifier, "readings": [reading]} if reading is not None else payload
    parsed = parse_payload(body)
    with transaction.atomic():
        result = ingest(device, parsed, source="replay", keep_rejected=False)
        letter.handled_at = timezone.now()
        letter.handled_by = by
        letter.outcome = json_io.dumps(result.as_json())
        if result.rejected:
            letter.reason = "; ".join(r["reason"] for r in result.rejected)
        else:
            letter.status = DeadLetter.REPLAYED
        letter.save()
    return result
