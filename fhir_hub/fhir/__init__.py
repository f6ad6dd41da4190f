"""FHIR building blocks independent of storage and HTTP: types, ids, JSON, time, validation."""
