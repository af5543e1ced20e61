"""A forged admin action selection (a hand-made POST naming rows that cannot exist) is refused
with a message on the changelist, never a server error, on every model the admin shows:
our own apps' and Django's users and groups alike."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group

from devices import services
from devices.models import DeadLetter

FORGED = ["abc", "1.5", "", "99999999999999999999999", "1\x00"]


@pytest.mark.parametrize("value", FORGED)
def test_a_forged_dead_letter_selection_is_refused_and_nothing_is_replayed(admin_client, value):
    services.register_device("DL-F")
    response = admin_client.post(
        "/admin/devices/deadletter/",
        {"action": "replay", "_selected_action": ["1", value]},
        follow=True,
    )
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert DeadLetter.objects.filter(status=DeadLetter.REPLAYED).count() == 0


@pytest.mark.parametrize("value", FORGED)
def test_a_forged_delete_selection_of_djangos_own_models_is_refused(admin_client, value):
    group = Group.objects.create(name="nurses")
    response = admin_client.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [str(group.pk), value]},
        follow=True,
    )
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert Group.objects.filter(pk=group.pk).exists()


def test_every_registered_admin_checks_its_selection():
    """A model admin registered later (by any app) is covered too, not only today's."""
    for model, model_admin in admin.site._registry.items():
        assert hasattr(model_admin, "checked_selection"), model


def test_a_genuine_selection_still_runs_the_action(admin_client):
    group = Group.objects.create(name="porters")
    response = admin_client.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [str(group.pk)], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert not Group.objects.filter(pk=group.pk).exists()
