"""URLs of the clinicians' forecast pages, mounted at /forecasting/ (dth_project.urls)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "forecasting"

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("patient/<str:patient_id>/", views.patient, name="patient"),
    path("patient/<str:patient_id>/forecast/", views.forecast_now, name="forecast-now"),
]
