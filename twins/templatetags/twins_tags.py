"""Template filters of the clinicians' pages."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import reverse

register = template.Library()


@register.filter
def resource_admin_url(reference: str) -> str:
    """The admin page listing a stored resource, from its ``Type/id`` reference."""
    if "/" not in reference:
        return ""
    resource_type, logical_id = reference.split("/", 1)
    query = urlencode({"resource_type__exact": resource_type, "q": logical_id})
    return f"{reverse('admin:fhir_api_resource_changelist')}?{query}"
