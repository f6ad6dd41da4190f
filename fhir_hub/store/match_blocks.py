"""Patient match blocks: each Patient filed under its blocking keys, so that matching a new record reads a
handful of candidates and never the whole population (issue 16).

The documents are a deriver's (``store/derivers.py``): computed from a Patient version's stored JSON by the
pure matching package (``features`` then ``block_keys``), written in the same request or transaction as
the version, replaced with each new version, removed with a deletion, and recomputed by crash repair. A
change to ``block_keys`` changes what is stored: raise ``search.indexing.INDEX_FORMAT`` with it, and the
next start recomputes every deriver for every resource.

Keys are packed several to a document, as the search index's entries are (``index_docs.py``): each key
goes to the slot field its hash names (``b0``..``b7``, each a sparse single-field index), so a look-up
knows the one field to ask, and a Patient's ~8 keys take one or two documents instead of eight. One
document per key cost Patient writes a quarter of their throughput (``python -m bench matching``).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_hub.linking.elements import is_master
from fhir_hub.matching import block_keys, features
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.schema import BLOCK_FIELDS, MATCH_BLOCKS


def block_field(key: str) -> str:
    """The slot field a key is stored in: a stable hash (not ``hash()``, which differs between processes)."""
    return BLOCK_FIELDS[zlib.crc32(key.encode()) % len(BLOCK_FIELDS)]


@dataclass(frozen=True, slots=True)
class MatchBlocks:
    """The deriver: a Patient's blocking keys, packed into slot fields (``_id`` = resource and number)."""

    name: str = "patient match blocks"
    collection: str = MATCH_BLOCKS

    def derive(self, version: StoredVersion, resource: dict[str, Any] | None) -> list[dict[str, Any]]:
        if version.rtype != "Patient" or version.deleted or resource is None or is_master(resource):
            return []  # a deleted Patient is no one's candidate; a master is its sources' (linking/golden.py)
        columns: dict[str, list[str]] = {}
        for key in sorted(block_keys(features(resource, version.key))):
            columns.setdefault(block_field(key), []).append(key)
        depth = max((len(keys) for keys in columns.values()), default=0)
        return [{"_id": f"{version.key}|{n}", "r": version.key,
                 **{name: keys[n] for name, keys in sorted(columns.items()) if n < len(keys)}}
                for n in range(depth)]


async def candidates(collection: Any, keys: Iterable[str]) -> set[str]:
    """The Patients filed under any of ``keys``. One equality per key: nx-27017 reads the whole collection
    for an ``$in`` on any field but ``_id`` (see the README's store notes); sent together, not one after
    the other (the match step waits for all of them on every Patient write)."""

    async def under(key: str) -> list[str]:
        return [doc["r"] async for doc in collection.find({block_field(key): key}, {"r": 1})]

    found: set[str] = set()
    for part in await asyncio.gather(*(under(key) for key in sorted(set(keys)))):
        found.update(part)
    return found
