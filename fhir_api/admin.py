"""Admin pages: clinicians browse patients and any stored resource, with its version history.

The store is written only through the FHIR API and the services (so that versions and indexes
stay consistent); the admin shows resources read-only.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from . import json_io
from .models import (
    ApiToken,
    ImportFile,
    ImportRejection,
    PatientResource,
    Resource,
    ResourceVersion,
)


def pretty_json(text: str) -> str:
    if not text:
        return "(deleted)"
    return json_io.dumps(json_io.loads(text), pretty=True)


class VersionInline(admin.TabularInline):
    model = ResourceVersion
    fields = ("version_id", "method", "last_updated", "deleted", "content_pretty")
    readonly_fields = fields
    ordering = ("-version_id",)
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description="content")
    def content_pretty(self, obj: ResourceVersion):
        return format_html(
            '<pre style="max-height:20em;overflow:auto">{}</pre>', pretty_json(obj.content)
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Resource)
class ResourceAdmin(ReadOnlyAdmin):
    list_display = ("resource_type", "logical_id", "version_id", "last_updated", "deleted")
    list_filter = ("resource_type", "deleted")
    search_fields = ("=logical_id", "resource_type")
    ordering = ("-last_updated",)
    fields = ("resource_type", "logical_id", "version_id", "last_updated", "deleted", "json")
    readonly_fields = fields
    inlines = [VersionInline]
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="JSON")
    def json(self, obj: Resource):
        return format_html("<pre>{}</pre>", pretty_json(obj.content))


@admin.register(PatientResource)
class PatientAdmin(ResourceAdmin):
    list_display = ("logical_id", "name", "birth_date", "gender", "version_id", "last_updated")
    list_filter = ("deleted",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(resource_type="Patient")

    @staticmethod
    def _data(obj: Resource) -> dict:
        return json_io.loads(obj.content) if obj.content else {}

    @admin.display(description="name")
    def name(self, obj: Resource) -> str:
        names = self._data(obj).get("name") or []
        if not names:
            return ""
        first = names[0]
        if first.get("text"):
            return first["text"]
        return " ".join([*first.get("given", []), first.get("family", "")]).strip()

    @admin.display(description="birth date")
    def birth_date(self, obj: Resource) -> str:
        return self._data(obj).get("birthDate", "")

    @admin.display(description="gender")
    def gender(self, obj: Resource) -> str:
        return self._data(obj).get("gender", "")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created", "revoked")
    list_filter = ("revoked",)
    fields = ("user", "name", "prefix", "created", "revoked")
    readonly_fields = ("user", "prefix", "created")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        # A token is shown only when it is made; the admin could not show it afterwards.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        queryset.update(revoked=True)


class RejectionInline(admin.TabularInline):
    model = ImportRejection
    fields = ("position", "reason", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ImportFile)
class ImportFileAdmin(ReadOnlyAdmin):
    """Files loaded by ``manage.py import_fhir``: progress, counts, and what was rejected."""

    list_display = ("path", "complete", "done", "written", "rejected", "updated_at")
    list_filter = ("complete",)
    fields = ("path", "size", "mtime", "complete", "done", "written", "rejected", "updated_at")
    readonly_fields = fields
    inlines = [RejectionInline]


@admin.register(ImportRejection)
class ImportRejectionAdmin(ReadOnlyAdmin):
    """An entry that could not be stored, with its reason and its text as it came."""

    list_display = ("file", "position", "reason", "created")
    fields = ("file", "position", "reason", "raw_text", "created")
    readonly_fields = fields

    @admin.display(description="raw")
    def raw_text(self, obj: ImportRejection):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.raw[:200_000])
