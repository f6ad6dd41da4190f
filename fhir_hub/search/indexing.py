"""Search-index entries extracted from a resource when it is written.

Indexed so far: ``identifier`` (what conditional create, update and delete need) and Patient-compartment
membership (what narrows a resident's searches). The full R4 search-parameter set, extracted from the
official definitions, joins them in the search issue. The function is pure so the store can recompute
entries from stored JSON when it repairs a write.
"""

from __future__ import annotations

from typing import Any

from fhir_hub.fhir.compartment import patient_ids
from fhir_hub.search.keys import compartment_entry, token_entry
from fhir_hub.store.records import SearchEntry


def index_keys(rtype: str, resource: dict[str, Any]) -> frozenset[SearchEntry]:
    keys: set[SearchEntry] = set()
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # a few types have identifier 0..1
        identifiers = [identifiers]
    if isinstance(identifiers, list):
        for ident in identifiers:
            value = _str(ident.get("value")) if isinstance(ident, dict) else None
            if value is not None:
                keys.add(token_entry(rtype, "identifier", _str(ident.get("system")), value))
    keys.update(compartment_entry(rtype, pid) for pid in patient_ids(rtype, resource))
    return frozenset(keys)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
