"""``manage.py register_device --identifier <serial> --patient <Patient id>``.

Registers the device (a FHIR Device and a registry entry; idempotent), pairs it to the patient
from now on, and prints a new device API key on the last line.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from devices import services
from devices.models import Device
from fhir_api.exceptions import FHIRError


class Command(BaseCommand):
    help = "Register a wearable, pair it to a patient and print its API key (last line)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--identifier", required=True, help="Serial number or EUI-64")
        parser.add_argument("--patient", help="FHIR Patient id to pair the device to")
        parser.add_argument(
            "--kind", choices=[Device.SENSOR, Device.GATEWAY], default=Device.SENSOR
        )
        parser.add_argument("--model", default="")
        parser.add_argument("--manufacturer", default="")

    def handle(
        self,
        *args,
        identifier: str,
        patient: str | None,
        kind: str,
        model: str,
        manufacturer: str,
        **options,
    ) -> None:
        try:
            device = services.register_device(
                identifier, kind=kind, model_name=model, manufacturer=manufacturer
            )
            if patient:
                services.pair(device, patient, by="manage.py register_device")
        except FHIRError as error:
            raise CommandError(error.diagnostics) from None
        self.stderr.write(f"Device {device.identifier} is FHIR Device/{device.fhir_id}")
        if patient:
            self.stderr.write(f"Paired to Patient/{patient}")
        self.stdout.write(services.issue_key(device))
