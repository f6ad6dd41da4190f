"""Consent: pure decision functions. Narrow a query for a caller, and decide on one resource
(proceed / authorized / reject), called from the one read path for every interaction.

Empty until the security and consent issues; nothing here imports FastAPI or pymongo.
"""
