"""One module per search-parameter type (hl7.org/fhir/R4B/search.html#ptypes).

Each has ``match(ctx, criterion) -> Q``: a filter on ``Resource`` rows, built from a subquery on
that type's index table; values of one criterion are OR-ed.
"""
