"""FHIR search (hl7.org/fhir/R4B/search.html): parameter parsing, typed indexes, query building."""
