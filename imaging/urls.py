"""DICOMweb-style routes under ``/dicomweb/`` (DICOM PS3.18: STOW-RS, WADO-RS)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "imaging"

urlpatterns = [
    path("studies", views.StudiesView.as_view(), name="stow"),
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>",
        views.InstanceView.as_view(),
        name="instance",
    ),
]
