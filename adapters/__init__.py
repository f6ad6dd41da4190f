"""Adapters: what each level of care really sends (MoH XML, HL7 v2, clinic CSV, FHIR Bundles) turned into
FHIR transaction Bundles for the hub's one write path. Pure code: no FastAPI, no pymongo.

Empty until the adapters issue; see adapters/README.md for the interface they will share.
"""
