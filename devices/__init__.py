"""Wearables: device registry, ingest over HTTP and MQTT, mapping to FHIR Observations, simulator."""
