"""URLs of the clinicians' views, mounted at /twins/ (dth_project.urls)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "twins"

urlpatterns = [
    path("ward/", views.ward, name="ward"),
    path("ward.json", views.ward_json, name="ward-json"),
    path("patient/<str:patient_id>/", views.patient, name="patient"),
    path("patient/<str:patient_id>/series.json", views.series_json, name="series"),
    path("patient/<str:patient_id>/settings/", views.update_settings, name="settings"),
    path("patient/<str:patient_id>/stage/", views.change_stage, name="stage"),
    path("patient/<str:patient_id>/impression/", views.record_impression, name="impression"),
    path("patient/<str:patient_id>/condition/", views.record_condition, name="condition"),
    path("alert/<int:alert_id>/act/", views.alert_action, name="alert-action"),
]
