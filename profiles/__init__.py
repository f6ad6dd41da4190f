"""Profiles: the hub's FHIR profiles, identifier and code systems, risk rules, and the code that checks a
resource against them, kept as data. Pure code: no FastAPI, no pymongo.

Structural validation against the R4B models lives in ``fhir_hub.fhir.validation``; what goes here is what
the models do not check: the base specification's required bindings and invariants (``validation/``, over
the extract in ``fhir-r4/``), and next the city's own profiles (Vietnamese identifiers...).
"""
