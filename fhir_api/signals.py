"""Signals other apps subscribe to; fhir_api never imports them (dependencies point one way)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the transaction holding a write has committed, once per written version, with
# keyword arguments resource_type, logical_id, version_id, deleted.
resource_committed = Signal()
