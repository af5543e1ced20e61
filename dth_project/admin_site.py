"""The admin site: CloudDTH's branding, and action selections checked before any action runs.

Django's admin runs an action on ``queryset.filter(pk__in=<the posted _selected_action>)``
without checking the posted values: a hand-made POST naming ``abc``, a number past the column's
range or a NUL byte ends in a server error from the database layer. ``register`` gives every
model admin, ours and those Django's own apps register (users, groups), a check that refuses
such a selection with a message on the changelist, so nothing runs on it.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpResponseRedirect


def invalid_keys(model, values: list[str]) -> list[str]:
    """The posted primary keys of ``model`` that no row could have."""
    pk = model._meta.pk
    internal = pk.get_internal_type()
    try:
        low, high = connection.ops.integer_field_range(internal)
    except KeyError:  # not an integer key
        low = high = None
    bad = []
    for value in values:
        try:
            if "\x00" in value:
                raise ValidationError("NUL")
            key = pk.to_python(value)
            if key is None or key == "":
                raise ValidationError("empty")
            if low is not None and not low <= key <= high:
                raise ValidationError("out of range")
        except ValidationError:
            bad.append(value)
    return bad


class CheckedSelection:
    """Mixed into every registered model admin by ``CloudDTHAdminSite.register``."""

    checked_selection = True

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        bad = invalid_keys(self.model, selected)
        if bad:
            shown = ", ".join(repr(v) for v in bad[:5])
            self.message_user(
                request,
                f"The selection is not valid ({shown} names no {self.model._meta.verbose_name}):"
                " no action was run.",
                messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


class CloudDTHAdminSite(admin.AdminSite):
    site_header = "CloudDTH"
    site_title = "CloudDTH"
    index_title = "Health records, devices and patient twins"

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, CheckedSelection):
            admin_class = type(
                admin_class.__name__,
                (CheckedSelection, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
            )
        super().register(model_or_iterable, admin_class, **options)
