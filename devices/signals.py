"""Signals of the devices app."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a batch of readings has committed, with keyword arguments device_id (registry pk),
# patient_ids (FHIR Patient ids whose twins changed) and observation_ids (the new Observations).
readings_stored = Signal()
