"""The FHIR interactions without HTTP, one small module each (Blaze-style): create, update (and conditional
update), patch, delete, read/vread, search, the single match the conditional ones share, and ``Patient/$match``.

Each takes a ``Session`` (``session.py``: the caller, the audit record, the base URL, ``Prefer``, the clock
and the store transaction, but no request) and answers a typed result (``results.py``): a ``Written``, a
``StoredVersion``, a ``Searched`` page. REST routes (``fhir_hub/api``) translate HTTP into these calls and
render the results; the Bundle processor (``fhir_hub/bundles``) and ingestion (``fhir_hub/ingest``) call
them directly, and so will queue workers.
"""

from fhir_hub.services.results import EntryResult, Searched, Written
from fhir_hub.services.session import Session

__all__ = ["EntryResult", "Searched", "Session", "Written"]
