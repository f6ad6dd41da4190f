"""Running parsed criteria against the store: the same code answers searches and conditional interactions."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_hub.errors import BadRequest
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.search.keys import token_match
from fhir_hub.search.query import Criterion, SearchQuery, parse_search, split_token, unescape
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.records import StoredVersion, resource_key


async def matching_keys(store: MongoStore, query: SearchQuery) -> set[str] | None:
    """Keys of resources meeting every criterion (not yet filtered to live ones); None: no criteria."""
    result: set[str] | None = None
    for criterion in query.criteria:
        keys = await _criterion_keys(store, query.rtype, criterion)
        result = keys if result is None else result & keys
        if not result:
            return set()
    return result


async def _criterion_keys(store: MongoStore, rtype: str, criterion: Criterion) -> set[str]:
    if criterion.name == "_id":
        ids = (unescape(v) for v in criterion.any_of)
        return {resource_key(rtype, rid) for rid in ids if is_valid_id(rid)}
    if criterion.name == "identifier":
        matches = [token_match(rtype, "identifier", *split_token(v)) for v in criterion.any_of if v]
        return await store.resources_matching(matches)
    raise AssertionError(f"unhandled criterion {criterion.name}")  # parse_search only admits CRITERIA


async def resolve_conditional(store: MongoStore, rtype: str, query_string: str, *, what: str) -> list[StoredVersion]:
    """Live resources matching the criteria of a conditional create, update or delete.

    Unsupported parameters are refused rather than ignored: a conditional delete that silently dropped
    its only criterion would match every resource of the type.
    """
    params = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
    # _count has no meaning for a condition; any value is accepted and unused.
    query = parse_search(rtype, params, default_count=0, max_count=2**31 - 1, strict=True)
    if not query.criteria:
        raise BadRequest(f"{what} needs search criteria (for example identifier=system|value or _id=...)")
    keys = await matching_keys(store, query)
    return await store.live_versions(keys or ())
