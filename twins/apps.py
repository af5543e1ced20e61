from __future__ import annotations

from django.apps import AppConfig


class TwinsConfig(AppConfig):
    name = "twins"
    verbose_name = "Patient twins"

    def ready(self) -> None:
        from devices import ranges
        from devices.signals import readings_stored
        from fhir_api import operations
        from fhir_api.signals import resource_committed

        from . import reading_settings, receivers
        from .operation import DEFINITION_URL, answer

        operations.register("Patient", "twin", DEFINITION_URL, answer)
        ranges.register_settings(reading_settings.settings_for)

        resource_committed.connect(receivers.on_resource, dispatch_uid="twins.on_resource")
        readings_stored.connect(receivers.on_readings, dispatch_uid="twins.on_readings")
