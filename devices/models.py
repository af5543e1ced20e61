"""The device registry: wearables and gateways, who wears them when, their keys and state.

Each registered device is also a FHIR ``Device`` in the store (identified as the PHD IG does,
by EUI-64 or serial). ``Pairing`` keeps every period a device was worn by a patient, so a
reading is attributed to whoever wore the device at the reading's time, never to whoever
wears it now. ``DeadLetter`` keeps every reading that could not be stored, to be seen and
replayed.
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import models


class Device(models.Model):
    SENSOR, GATEWAY = "sensor", "gateway"

    identifier = models.CharField(max_length=100, unique=True, help_text="EUI-64 or serial number")
    kind = models.CharField(
        max_length=10, choices=[(SENSOR, "sensor"), (GATEWAY, "gateway")], default=SENSOR
    )
    fhir_id = models.CharField("FHIR Device id", max_length=64, unique=True)
    model_name = models.CharField(max_length=100, blank=True, default="")
    manufacturer = models.CharField(max_length=100, blank=True, default="")
    battery_level = models.FloatField(null=True, blank=True, help_text="% at the last report")
    battery_at = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "devices_device"

    def __str__(self) -> str:
        return f"{self.kind} {self.identifier}"


class Pairing(models.Model):
    """A device worn by a patient from ``start`` until ``end`` (open while worn)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="pairings")
    patient_id = models.CharField("FHIR Patient id", max_length=64)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        db_table = "devices_pairing"
        indexes = [models.Index(fields=["device", "start"], name="devices_pairing_time")]
        ordering = ["device", "-start"]

    def __str__(self) -> str:
        until = self.end.isoformat() if self.end else "now"
        return f"{self.device.identifier} → Patient/{self.patient_id} ({self.start.isoformat()} to {until})"

    def covers(self, moment) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


class DeviceKey(models.Model):
    """An API key a device authenticates with (``Authorization: Device <key>``); only its hash is kept."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="keys")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "devices_key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.device.identifier}{', revoked' if self.revoked_at else ''})"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, device: Device) -> tuple[DeviceKey, str]:
        key = "dk_" + secrets.token_urlsafe(32)
        return cls.objects.create(device=device, key_hash=cls.hash_key(key), prefix=key[:8]), key


class ReadingKey(models.Model):
    """The identifier of every stored reading: claiming it first makes a resend a duplicate,
    even when two copies of a batch arrive at the same moment."""

    key = models.CharField(max_length=40, primary_key=True)

    class Meta:
        db_table = "devices_reading_key"

    def __str__(self) -> str:
        return self.key


class DeadLetter(models.Model):
    """A reading (or a whole payload) that could not be stored, with why; replayable."""

    NEW, REPLAYED, DISCARDED = "new", "replayed", "discarded"

    received = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=20)  # http, openmhealth, mqtt, file, replay
    device_identifier = models.CharField(max_length=100, blank=True, default="")
    reason = models.TextField()
    payload = models.TextField(help_text="The reading (or payload) exactly as it came")
    status = models.CharField(
        max_length=10,
        choices=[(NEW, "new"), (REPLAYED, "replayed"), (DISCARDED, "discarded")],
        default=NEW,
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.CharField(max_length=150, blank=True, default="")
    outcome = models.TextField(blank=True, default="")

    class Meta:
        db_table = "devices_dead_letter"
        indexes = [models.Index(fields=["status", "received"], name="devices_dead_status")]
        ordering = ["-received"]

    def __str__(self) -> str:
        return f"{self.received:%Y-%m-%d %H:%M} {self.device_identifier}: {self.reason[:60]}"
