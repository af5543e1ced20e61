"""FHIR R4B storage, validation, search and the RESTful API (hl7.org/fhir/R4B/http.html).

This app knows nothing of devices, twins or forecasts: they use its services and subscribe to
the ``resource_committed`` signal it sends after each committed write.
"""
