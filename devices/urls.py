"""URLs of the devices app, under /api/devices/."""

from __future__ import annotations

from django.urls import path, re_path

from . import views

urlpatterns = [
    path("api/devices/readings", views.ReadingsView.as_view(), name="device-readings"),
    path("api/devices/", views.FleetView.as_view(), name="device-fleet"),
    re_path(
        r"^api/devices/(?P<identifier>[^/]+)/(?P<action>pair|unpair|revoke|key)$",
        views.DeviceActionView.as_view(),
        name="device-action",
    ),
]
