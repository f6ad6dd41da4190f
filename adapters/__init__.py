"""Adapters: what each level of care really sends (MoH XML, HL7 v2, clinic CSV, FHIR Bundles) turned into
FHIR transaction Bundles for the hub's one write path. Pure code: no FastAPI, no pymongo (see README.md).
"""
