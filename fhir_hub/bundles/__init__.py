"""Batch and transaction Bundles (FHIR R4 http.html#transaction): the envelope, references, processing."""
