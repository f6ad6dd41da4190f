"""Search-index entries extracted from a resource when it is written.

This foundation indexes ``identifier`` (what conditional create, update and delete need); the full R4
search-parameter set, extracted from the official definitions, replaces it in the search issue. The
function is pure so the store can recompute entries from stored JSON when it repairs a write.
"""

from __future__ import annotations

from typing import Any

from fhir_hub.search.keys import token_index_keys


def index_keys(rtype: str, resource: dict[str, Any]) -> frozenset[str]:
    keys: set[str] = set()
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # a few types have identifier 0..1
        identifiers = [identifiers]
    if isinstance(identifiers, list):
        for ident in identifiers:
            if isinstance(ident, dict):
                system, value = ident.get("system"), ident.get("value")
                keys.update(token_index_keys(rtype, "identifier", _str(system), _str(value)))
    return frozenset(keys)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
