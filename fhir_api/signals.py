"""Signals other apps subscribe to; fhir_api never imports them (dependencies point one way)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the transaction holding a write has committed, once per written version, with
# keyword arguments resource_type, logical_id, version_id, deleted. Every write path sends it,
# the bulk path (fhir_api.bulk) too: there with the extra keyword bulk=True. The single-write
# path (fhir_api.services) adds index: the search.extract.IndexRows written with the version
# (None for a delete), so that a receiver can read e.g. the subject without a query.
resource_committed = Signal()

# Sent once per committed bulk batch (fhir_api.bulk.create_many), after resource_committed has
# been sent for each of its resources, with keyword argument resources: a list of
# bulk.Written(resource_type, logical_id, pk, version_id). A receiver that handles batches
# connects here and ignores resource_committed when its bulk keyword is true, so that it
# handles each version once.
resources_committed = Signal()
