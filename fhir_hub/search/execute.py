"""Running parsed criteria against the store: the same code answers searches and conditional interactions.

Every run takes the caller's ``Grant``: a resident's search is narrowed by the compartment entries in the
index before anything is fetched, and every result is checked again against the compartment, so nothing
outside it is returned or counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fhir_hub.audit import AUDIT_TYPE, as_version
from fhir_hub.auth.policy import Grant
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.search.keys import compartment_match, token_match
from fhir_hub.search.query import Criterion, SearchQuery, parse_search, split_token, unescape
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.records import StoredVersion, resource_key


@dataclass(frozen=True)
class SearchOutcome:
    total: int
    page: list[StoredVersion]
    next_after: str | None  # the key after which the next page starts; None on the last page


async def matching_keys(store: MongoStore, query: SearchQuery, grant: Grant) -> set[str] | None:
    """Keys of resources meeting every criterion and the grant (not yet filtered to live ones).

    None means "every resource of the type" (no criteria, no compartment limit).
    """
    result: set[str] | None = None
    if grant.compartment is not None:
        result = await store.resources_matching([compartment_match(query.rtype, grant.compartment)])
    for criterion in query.criteria:
        if result is not None and not result:
            break
        keys = await _criterion_keys(store, query.rtype, criterion)
        result = keys if result is None else result & keys
    return result


async def _criterion_keys(store: MongoStore, rtype: str, criterion: Criterion) -> set[str]:
    if criterion.name == "_id":
        ids = (unescape(v) for v in criterion.any_of)
        return {resource_key(rtype, rid) for rid in ids if is_valid_id(rid)}
    if criterion.name == "identifier":
        matches = [token_match(rtype, "identifier", *split_token(v)) for v in criterion.any_of if v]
        return await store.resources_matching(matches)
    raise AssertionError(f"unhandled criterion {criterion.name}")  # parse_search admits only these


async def run_search(store: MongoStore, query: SearchQuery, grant: Grant, *, after: str | None) -> SearchOutcome:
    if query.rtype == AUDIT_TYPE:
        return await _audit_search(store, query, grant, after=after)
    keys = await matching_keys(store, query, grant)
    if keys is None:
        total = await store.count_live(query.rtype)
        found = await store.live_page(query.rtype, after, query.count + 1) if query.count else []
    else:
        live = [v for v in await store.live_versions(keys) if grant.sees(v.patients)]
        total = len(live)
        found = [v for v in live if after is None or v.key > after][: query.count + 1]
    page = found[: query.count]
    more = len(found) > query.count and bool(page)
    return SearchOutcome(total, page, page[-1].key if more else None)


async def _audit_search(store: MongoStore, query: SearchQuery, grant: Grant, *, after: str | None
                        ) -> SearchOutcome:
    """AuditEvents come from the audit log: by ``_id`` and ``patient``, newest first."""
    ids: set[str] | None = None
    patients: set[str] | None = None
    for criterion in query.criteria:
        values = {unescape(v) for v in criterion.any_of if v}
        if criterion.name == "_id":
            ids = values if ids is None else ids & values
        else:
            wanted = {v.removeprefix("Patient/") for v in values}
            patients = wanted if patients is None else patients & wanted
    if grant.compartment is not None:
        patients = {grant.compartment} & patients if patients is not None else {grant.compartment}
    if patients == set() or ids == set():
        return SearchOutcome(0, [], None)
    wanted_patients = sorted(patients) if patients is not None else None
    wanted_ids = sorted(ids) if ids is not None else None
    total = await store.audit_log.count(patients=wanted_patients, ids=wanted_ids)
    before = _audit_position(after)
    entries = await store.audit_log.page(patients=wanted_patients, ids=wanted_ids, before=before,
                                         limit=query.count + 1) if query.count else []
    page = [as_version(entry) for entry in entries[: query.count]]
    more = len(entries) > query.count and bool(page)
    return SearchOutcome(total, page, f"{page[-1].ts}|{page[-1].rid}" if more else None)


def _audit_position(after: str | None) -> tuple[int, str] | None:
    if after is None:
        return None
    ts, _, last = after.partition("|")
    if not ts.isdigit() or not last:
        raise BadRequest("_page: not a page token issued by this server", expression=["_page"])
    return int(ts), last


async def resolve_conditional(store: MongoStore, rtype: str, query_string: str, grant: Grant, *, what: str,
                              max_params: int) -> list[StoredVersion]:
    """Live resources the caller may see that match the criteria of a conditional interaction.

    Unsupported parameters are refused rather than ignored: a conditional delete that silently dropped
    its only criterion would match every resource of the type.
    """
    params = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
    # _count has no meaning for a condition; any value is accepted and unused.
    query = parse_search(rtype, params, default_count=0, max_count=2**31 - 1, strict=True, max_params=max_params)
    if not query.criteria:
        raise BadRequest(f"{what} needs search criteria (for example identifier=system|value or _id=...)")
    keys = await matching_keys(store, query, grant)
    return [v for v in await store.live_versions(keys or ()) if grant.sees(v.patients)]
