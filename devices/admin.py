"""Admin pages for the device registry and the dead letters.

Staff register a device (its FHIR Device is made and a key shown once), pair it to a patient,
end a pairing, revoke keys, and look at every reading that could not be stored and replay it
once its cause is fixed (e.g. after pairing the device for the right period).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from fhir_api.exceptions import FHIRError

from . import services
from .models import DeadLetter, Device, DeviceKey, Pairing


class PairingInline(admin.TabularInline):
    model = Pairing
    fields = ("patient_id", "start", "end", "created_by", "reason")
    readonly_fields = ("created_by",)
    extra = 0
    ordering = ("-start",)

    def has_change_permission(self, request, obj=None) -> bool:
        # History is kept as it happened: pair/unpair through the actions, never edit the past.
        return False


class KeyInline(admin.TabularInline):
    model = DeviceKey
    fields = ("prefix", "created", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class DeviceForm(forms.ModelForm):
    patient = forms.CharField(required=False, help_text="FHIR Patient id to pair the device to now")

    class Meta:
        model = Device
        fields = ("identifier", "kind", "model_name", "manufacturer")


class PairForm(forms.Form):
    patient = forms.CharField(help_text="FHIR Patient id")


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceForm
    list_display = ("identifier", "kind", "patient", "battery", "last_seen", "fhir_link")
    list_filter = ("kind",)
    search_fields = ("identifier", "fhir_id", "pairings__patient_id")
    readonly_fields = ("fhir_id", "battery_level", "battery_at", "last_seen", "created")
    inlines = [PairingInline, KeyInline]
    actions = ["issue_key", "revoke_keys", "unpair"]

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "identifier") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        try:
            device = services.register_device(
                obj.identifier,
                kind=obj.kind,
                model_name=obj.model_name,
                manufacturer=obj.manufacturer,
            )
            if form.cleaned_data.get("patient"):
                services.pair(device, form.cleaned_data["patient"], by=request.user.username)
        except FHIRError as error:
            self.message_user(request, error.diagnostics, messages.ERROR)
            raise
        obj.pk, obj.fhir_id = device.pk, device.fhir_id
        key = services.issue_key(device)
        self.message_user(
            request, f"Device registered. Its API key (shown only now): {key}", messages.WARNING
        )

    @admin.display(description="worn by")
    def patient(self, obj: Device) -> str:
        current = obj.pairings.filter(end=None).first()
        return f"Patient/{current.patient_id}" if current else "—"

    @admin.display(description="battery %")
    def battery(self, obj: Device):
        return "" if obj.battery_level is None else f"{obj.battery_level:.0f}"

    @admin.display(description="FHIR")
    def fhir_link(self, obj: Device):
        return format_html('<a href="/fhir/Device/{}">Device/{}</a>', obj.fhir_id, obj.fhir_id)

    @admin.action(description="Issue a new API key")
    def issue_key(self, request, queryset) -> None:
        for device in queryset:
            key = services.issue_key(device)
            self.message_user(
                request, f"{device.identifier}: new key (shown only now): {key}", messages.WARNING
            )

    @admin.action(description="Revoke all keys")
    def revoke_keys(self, request, queryset) -> None:
        count = sum(services.revoke_keys(device) for device in queryset)
        self.message_user(request, f"Revoked {count} key(s)")

    @admin.action(description="End the current pairing (unpair)")
    def unpair(self, request, queryset) -> None:
        ended = [d.identifier for d in queryset if services.unpair(d, by=request.user.username)]
        self.message_user(request, f"Unpaired: {', '.join(ended) or 'none was paired'}")


@admin.register(Pairing)
class PairingAdmin(admin.ModelAdmin):
    """Every period a device was worn, for attributing readings; pair through this form."""

    list_display = ("device", "patient_id", "start", "end", "created_by")
    search_fields = ("device__identifier", "patient_id")
    list_filter = ("end",)
    fields = ("device", "patient_id", "start", "end", "reason")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        pairing = services.pair(
            obj.device,
            obj.patient_id,
            start=obj.start,
            end=obj.end,
            by=request.user.username,
            reason=obj.reason,
        )
        obj.pk = pairing.pk


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("received", "source", "device_identifier", "reason", "status")
    list_filter = ("status", "source")
    search_fields = ("device_identifier", "reason")
    readonly_fields = (
        "received",
        "source",
        "device_identifier",
        "reason",
        "payload_pretty",
        "status",
        "handled_at",
        "handled_by",
        "outcome",
    )
    fields = readonly_fields
    actions = ["replay", "discard"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="payload")
    def payload_pretty(self, obj: DeadLetter):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.payload[:100_000])

    @admin.action(description="Replay the selected readings")
    def replay(self, request, queryset) -> None:
        stored = failed = 0
        for letter in queryset.exclude(status=DeadLetter.REPLAYED):
            try:
                result = services.replay(letter, by=request.user.username)
            except FHIRError as error:
                letter.outcome = error.diagnostics
                letter.save(update_fields=["outcome"])
                failed += 1
                continue
            stored += result.accepted + result.duplicate
            failed += len(result.rejected)
        self.message_user(
            request, f"Replayed: {stored} stored, {failed} still rejected (see their reason)"
        )

    @admin.action(description="Discard (keep the record, stop showing as new)")
    def discard(self, request, queryset) -> None:
        from django.utils import timezone

        queryset.update(
            status=DeadLetter.DISCARDED, handled_at=timezone.now(), handled_by=request.user.username
        )
