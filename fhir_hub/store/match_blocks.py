"""Patient match blocks: each Patient filed under its blocking keys, so that matching a new record reads a
handful of candidates and never the whole population (issue 16).

The documents are a deriver's (``store/derivers.py``): computed from a Patient version's stored JSON by the
pure matching package (``features`` then ``block_keys``), written in the same request or transaction as
the version, replaced with each new version, removed with a deletion, and recomputed by crash repair. A
change to ``block_keys`` changes what is stored: raise ``search.indexing.INDEX_FORMAT`` with it, and the
next start recomputes every deriver for every resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_hub.matching import block_keys, features
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.schema import MATCH_BLOCKS


@dataclass(frozen=True, slots=True)
class MatchBlocks:
    """The deriver: a Patient's blocking keys, one document each (``_id`` = resource and key)."""

    name: str = "patient match blocks"
    collection: str = MATCH_BLOCKS

    def derive(self, version: StoredVersion, resource: dict[str, Any] | None) -> list[dict[str, Any]]:
        if version.rtype != "Patient" or version.deleted or resource is None:
            return []  # a deleted Patient is no one's candidate
        keys = block_keys(features(resource, version.key))
        return [{"_id": f"{version.key}|{key}", "r": version.key, "b": key} for key in sorted(keys)]


async def candidates(collection: Any, keys: Iterable[str]) -> set[str]:
    """The Patients filed under any of ``keys``. One equality per key: nx-27017 reads the whole collection
    for an ``$in`` on any field but ``_id`` (see the README's store notes)."""
    found: set[str] = set()
    for key in sorted(set(keys)):
        found.update([doc["r"] async for doc in collection.find({"b": key}, {"r": 1})])
    return found
