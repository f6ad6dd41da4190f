"""Documents derived from each stored version, and the one list of the derivers the hub runs.

A deriver turns one stored version into documents of its own collection: the search index today; patient
links, sensitivity labels and priority-queue entries are meant to follow as further derivers. The commit
pipeline (``store/pipeline.py``) asks every registered deriver for the documents of the new version and of
the version it supersedes; the store writes the difference in the same request, or the same transaction,
as the version itself (``store/plan.py``), and ``MongoStore.reconcile`` recomputes them from the stored
JSON when a crash or a failed request left them behind.

What the store relies on, so what every deriver must keep to:

- ``derive`` is a pure function of the stored version (its JSON, as stored, and ``StoredVersion``'s
  fields): crash repair recomputes it from that alone, long after the request that wrote it. Whatever a
  pipeline step decided that a deriver needs must therefore be in the stored resource.
- It is deterministic, ``_id`` included: the same version gives the same documents, so a new version
  sends only those that changed, and a repair finds what is already right.
- Every document carries ``r``, the key (``Type/id``) of the resource it derives from; the store finds a
  resource's documents by ``r``, so the collection needs a single-field index on it (``store/schema.py``).
- What a new version removes is not declared: the superseded version's documents that the new one does
  not give are deleted, those it gives differently are rewritten. A deletion is a version too: a deriver
  says what a deleted resource keeps (the search index: the compartments it was in; most: nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_hub.search.indexing import index_keys
from fhir_hub.store.consent_subjects import ConsentSubjects
from fhir_hub.store.index_docs import pack
from fhir_hub.store.match_blocks import MatchBlocks
from fhir_hub.store.patient_links import PatientLinks
from fhir_hub.store.records import SearchEntry, StoredVersion, deletion_entries, index_facts
from fhir_hub.store.schema import SEARCH_INDEX

Indexer = Callable[[str, dict[str, Any]], frozenset[SearchEntry]]


class Deriver(Protocol):
    @property
    def name(self) -> str:
        """For logs: what the documents are."""
        ...

    @property
    def collection(self) -> str:
        """The collection its documents live in; no other deriver writes there."""
        ...

    def derive(self, version: StoredVersion, resource: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The documents ``version`` gives rise to; ``resource`` is its stored JSON, parsed (None for a
        deletion)."""
        ...


@dataclass(frozen=True, slots=True)
class SearchIndex:
    """The search entries of a resource (``search/indexing.py``), packed into documents (``index_docs.py``)."""

    indexer: Indexer = index_keys
    name: str = "search index"
    collection: str = SEARCH_INDEX

    def derive(self, version: StoredVersion, resource: dict[str, Any] | None) -> list[dict[str, Any]]:
        if version.deleted:
            return pack(version.key, deletion_entries(version.rtype, version.patients))
        if resource is None:
            return []
        return pack(version.key, self.indexer(version.rtype, resource), index_facts(version))


# Every deriver the hub runs, in the order their documents are written. The search index comes first: a
# search must find a resource as soon as a read does; then each Patient's match blocks (match_blocks.py) and
# its link to its master (patient_links.py); each Consent's subject (consent_subjects.py). Queue entries are
# added here by the issue that brings them (with their collection in store/schema.py). Resources stored
# before a deriver was added get its documents when ``indexing.INDEX_FORMAT`` is raised: the next start then
# recomputes every deriver for every resource (``MongoStore.reindex_all``).
DERIVERS: tuple[Deriver, ...] = (SearchIndex(), MatchBlocks(), PatientLinks(), ConsentSubjects())
