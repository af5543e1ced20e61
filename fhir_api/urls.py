"""URL map of the FHIR API; both ``/fhir`` and ``/fhir/`` are the base."""

from __future__ import annotations

from django.urls import re_path

from . import views

TYPE = r"(?P<resource_type>[A-Za-z]+)"
ID = r"(?P<logical_id>[^/]+)"

urlpatterns = [
    re_path(r"^fhir/?$", views.SystemView.as_view(), name="fhir-system"),
    re_path(r"^fhir/metadata/?$", views.MetadataView.as_view(), name="fhir-metadata"),
    # Searches and creates, the most frequent requests: early (only "metadata" above is also
    # a word without a slash after it).
    re_path(rf"^fhir/{TYPE}/?$", views.TypeView.as_view(), name="fhir-type"),
    re_path(r"^fhir/_history/?$", views.SystemHistoryView.as_view(), name="fhir-history"),
    re_path(r"^fhir/_search/?$", views.SystemSearchView.as_view(), name="fhir-system-search"),
    re_path(
        rf"^fhir/Patient/{ID}/\$everything/?$",
        views.EverythingView.as_view(),
        name="fhir-patient-everything",
    ),
    re_path(r"^fhir/Observation/\$lastn/?$", views.LastnView.as_view(), name="fhir-lastn"),
    re_path(
        rf"^fhir/{TYPE}/(?:{ID}/)?\$(?P<operation>[^/]+)/?$",
        views.UnknownOperationView.as_view(),
        name="fhir-operation-unknown",
    ),
    re_path(rf"^fhir/{TYPE}/_search/?$", views.TypeSearchView.as_view(), name="fhir-search"),
    re_path(
        rf"^fhir/{TYPE}/_history/?$", views.TypeHistoryView.as_view(), name="fhir-type-history"
    ),
    re_path(rf"^fhir/{TYPE}/{ID}/?$", views.InstanceView.as_view(), name="fhir-instance"),
    re_path(
        rf"^fhir/{TYPE}/{ID}/_history/?$",
        views.InstanceHistoryView.as_view(),
        name="fhir-instance-history",
    ),
    re_path(
        rf"^fhir/{TYPE}/{ID}/_history/(?P<version>[^/]+)/?$",
        views.VersionView.as_view(),
        name="fhir-vread",
    ),
    re_path(r"^fhir/.*$", views.UnknownView.as_view(), name="fhir-unknown"),
]
