"""DICOMweb-style routes under ``/dicomweb/`` (DICOM PS3.18: STOW-RS, WADO-RS)."""

from __future__ import annotations

from django.urls import path, re_path

from . import views
from .rendered import RenderedView

app_name = "imaging"

urlpatterns = [
    path("studies", views.StudiesView.as_view(), name="stow"),
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>",
        views.InstanceView.as_view(),
        name="instance",
    ),
    # Rendered resources (PS3.18 10.4.1.1.3): the PNG preview (imaging.rendered).
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>/rendered",
        RenderedView.as_view(),
        name="rendered",
    ),
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>/frames/<int:frame>/rendered",
        RenderedView.as_view(),
        name="frame-rendered",
    ),
    re_path(r"^.*$", views.UnknownView.as_view(), name="unknown"),
]
