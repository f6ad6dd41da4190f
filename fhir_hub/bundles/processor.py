"""Processing batch and transaction Bundles (FHIR R4 http.html#transaction) through the same services as
the single-resource routes (``fhir_hub/services``), in a ``Session``: no HTTP request is needed, so REST
(``api/bundle.py``, which renders the response Bundle), ingestion and queue workers share it. The answer is
one typed ``EntryResult`` per entry.

**Batch**: each entry as if sent on its own, in the order given; one that fails answers its own error and
the others go on. Consecutive writes are committed in groups of up to ``BATCH_GROUP``, one server
transaction each, because a request to the store costs far more than the documents in it (nx-27017: the
Synthea directory batches went from ~300 to ~750 resources/s, ``python -m bench bundles``). Grouping
changes nothing a client can see: an entry's conditional searches see the earlier entries of its group
(``store/own_writes.py``); an entry that would write a resource its group already wrote, or read what the
view cannot combine, first has the group committed; an entry's own error leaves the rest of the group
alone; and a group that fails to commit (a concurrent writer, a store error) is rolled back and its entries
run again one at a time, exactly as before grouping.

**Transaction** (all or nothing), in the order FHIR R4 gives (http.html#trules):
1. every entry is checked and each write is given its target before anything is written: POST gets a
   server id (or the resource its ``ifNoneExist`` finds), conditional PUT/PATCH/DELETE are resolved by
   search. Two entries on one resource, two conditional entries with the same criteria, or two entries with
   one fullUrl are refused: the outcome would depend on an order the client cannot see.
2. references to other entries (their fullUrl) and conditional references (``Type?criteria``, exactly
   one match) are rewritten to ``Type/id`` in every resource;
3. GET entries on resources the transaction does not write are read now, so a failing read fails the
   transaction before anything is stored;
4. DELETE, then POST, then PUT and PATCH go through the store's transaction; nothing is stored if any
   of them fails. The sensitivity labels of everything it writes are worked out together first, so an
   entry inherits the labels of an entry written after it (``store/labelling.py``);
5. the remaining GET entries are answered from the committed state.
If another writer changes one of the resources between steps 1 and 4, the whole transaction is planned
again (up to three times).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pymongo.errors import PyMongoError

from fhir_hub.bundles.envelope import WRITES, EntryProblem, EntryRequest, read_entries
from fhir_hub.bundles.references import conditional_reference, is_local, references_in, rewrite
from fhir_hub.errors import BadRequest, Conflict, HubError, Issue, NotFound, PreconditionFailed
from fhir_hub.fhir.fhirpath_patch import fhirpath_patch
from fhir_hub.fhir.patch import Applier, binary_json_patch
from fhir_hub.fhir.registry import is_resource_type
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.fhir.validation_ahead import Handover
from fhir_hub.linking.linker import match_claims
from fhir_hub.search.query import SearchQuery
from fhir_hub.services import search
from fhir_hub.services.conditions import single_match
from fhir_hub.services.create import create_resource, existing_match
from fhir_hub.services.delete import NOTHING, delete
from fhir_hub.services.patch import patch
from fhir_hub.services.preconditions import parse_etag
from fhir_hub.services.read import read, vread
from fhir_hub.services.results import EntryResult, Written
from fhir_hub.services.session import Session
from fhir_hub.services.update import update, update_matched
from fhir_hub.store.claims import claim_key
from fhir_hub.store.own_writes import DependsOnOwnWrites
from fhir_hub.store.records import StoredVersion, VersionTaken
from fhir_hub.store.transaction import Transaction

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_ATTEMPTS = 3


# ---------------------------------------------------------------------------------------------- entry points
async def process(session: Session, kind: str, raw: dict[str, Any]) -> list[EntryResult]:
    """The result of each entry of ``raw`` (a ``kind`` Bundle: "batch" or "transaction"), in entry order.
    A transaction that fails raises the error of the entry that failed it (nothing is stored)."""
    entries = read_entries(raw, session.base_url)
    if kind == "batch":
        return await _batch(session, entries)
    return await _transaction(session, entries)


def in_entry(index: int, error: HubError) -> HubError:
    """The same error, its messages and paths saying which entry it is about."""
    where = f"Bundle.entry[{index}]"
    issues = [Issue(i.code, i.diagnostics if i.diagnostics.startswith(where) else f"{where}: {i.diagnostics}",
                    (where, *i.expression) if where not in i.expression else i.expression, i.severity)
              for i in error.issues]
    return type(error)(issues[0].diagnostics, issues=issues, status=error.status, code=error.code,
                       headers=error.headers)


# --------------------------------------------------------------------------------------------------- batch
BATCH_GROUP = 64  # consecutive write entries of a batch committed in one server transaction


async def _batch(session: Session, entries: list[EntryRequest | EntryProblem]) -> list[EntryResult]:
    results: dict[int, EntryResult] = {}
    known: dict[str, str] = {}  # conditional references resolved so far
    group: list[EntryRequest] = []
    for item in entries:
        if isinstance(item, EntryRequest) and item.method in WRITES:
            group.append(item)
            if len(group) == BATCH_GROUP:
                await _batch_writes(session, group, known, results)
                group = []
            continue
        await _batch_writes(session, group, known, results)  # a read (or a refused entry) after the writes before it
        group = []
        results[item.index] = await _batch_entry(session, item, known)
    await _batch_writes(session, group, known, results)
    return [results[item.index] for item in entries]


async def _batch_writes(session: Session, items: list[EntryRequest], known: dict[str, str],
                        results: dict[int, EntryResult]) -> None:
    while items:
        items = items[await _batch_group(session, items, known, results):]


async def _batch_group(session: Session, items: list[EntryRequest], known: dict[str, str],
                       results: dict[int, EntryResult]) -> int:
    """Commit the first entries of ``items`` together; returns how many were answered. Fewer than all when
    an entry depends on the group's writes in a way only a commit settles: it starts the next group. The
    group's conditional criteria are claimed meanwhile (no concurrent request creates under them)."""
    async with session.hub.store.claims.holding(_claims(items)):
        return await _commit_group(session, items, known, results)


async def _commit_group(session: Session, items: list[EntryRequest], known: dict[str, str],
                        results: dict[int, EntryResult]) -> int:
    mine: dict[int, EntryResult] = {}
    seen = dict(known)  # references resolved within the group count only once it is committed
    mark = session.audit.mark() if session.audit is not None else None
    try:
        async with session.hub.store.transaction() as tx:
            inside = session.within(tx)
            for item in items:
                try:
                    mine[item.index] = await _batch_write(inside, item, seen)
                except DependsOnOwnWrites:
                    if not mine:
                        raise  # not expected (nothing written yet): the handler below runs it alone
                    break
                except HubError as error:
                    mine[item.index] = EntryResult.of_error(in_entry(item.index, error))
    except (VersionTaken, PyMongoError, DependsOnOwnWrites):  # nothing of the group remains: one at a time
        if session.audit is not None and mark is not None:
            session.audit.rewind(mark)
        mine = {item.index: await _batch_entry(session, item, known) for item in items[:max(len(mine), 1)]}
        seen = known
    results.update(mine)
    known.update(seen)
    return len(mine)


async def _batch_write(session: Session, item: EntryRequest, known: dict[str, str]) -> EntryResult:
    """A batch's write entry is a transaction of one: the same steps, in a group's transaction or alone."""
    plan = _Planned(item)
    await _target(session, plan)
    writes = plan.key is not None and not (item.method == "POST" and plan.found is not None)
    if writes and session.tx is not None and plan.key in session.tx.changes:
        raise DependsOnOwnWrites(f"{plan.key} was written by an earlier entry of the group")
    await _rewrite(session, plan, {}, {}, known)
    return EntryResult.of_write(await _write_planned(session, plan))


async def _batch_entry(session: Session, item: EntryRequest | EntryProblem, known: dict[str, str]) -> EntryResult:
    if isinstance(item, EntryProblem):
        return EntryResult.of_error(item.error)
    try:
        if item.method in ("GET", "HEAD"):
            return await _get(session, item)
        return await _batch_write(session, item, known)  # committed alone
    except HubError as error:
        return EntryResult.of_error(in_entry(item.index, error))


# ---------------------------------------------------------------------------------------------- transaction
@dataclass
class _Planned:
    item: EntryRequest
    key: str | None = None  # the resource the entry writes ("Type/id")
    found: StoredVersion | None = None  # what an ifNoneExist or conditional update found
    resource: dict[str, Any] | None = None  # the body with references rewritten
    result: EntryResult | None = None
    query: SearchQuery | None = None  # a GET entry's search


async def _transaction(session: Session, entries: Sequence[EntryRequest | EntryProblem]) -> list[EntryResult]:
    items = _transaction_items(entries)
    async with session.hub.store.claims.holding(_claims(items)):
        for _attempt in range(_ATTEMPTS):
            try:
                async with session.hub.store.transaction() as tx:
                    plans = await _commit_planned(session, tx, items)
                return await _answered(session, plans)
            except VersionTaken:
                continue  # a resource changed between planning and commit: plan again from the new state
    raise Conflict("The transaction's resources kept changing under it; send it again")


def _transaction_items(entries: Sequence[EntryRequest | EntryProblem]) -> list[EntryRequest]:
    _refuse_duplicate_full_urls(entries)
    for item in entries:
        if isinstance(item, EntryProblem):
            raise in_entry(item.index, item.error)
    return [e for e in entries if isinstance(e, EntryRequest)]


# -------------------------------------------------------------------------------- several transactions at once
async def transactions(session: Session, bundles: list[dict[str, Any]]) -> list[list[EntryResult] | HubError]:
    """Several transaction Bundles, each all or nothing and answered exactly as if sent alone, committed in
    as few server transactions as they allow: what a queue worker does with the records it claimed. Why: a
    record's own writes cost the store far less than the transaction around them (its start, its commit,
    its claims), so a backfill committing one record per transaction is bound by that fixed cost rather
    than by the store's work. Each Bundle is planned inside the group's transaction, so its conditional
    searches see the earlier Bundles' writes (``store/own_writes.py``), as they would once those were
    committed; a Bundle writing a resource an earlier one of the group wrote starts the next group. A
    Bundle the hub refuses rolls its group back: the Bundles before it are committed again without it, and
    it answers its own error; a group the store refuses (a concurrent writer, a store error) is rolled
    back and its Bundles committed one at a time, each with the retries a single transaction gets."""
    outcomes: dict[int, list[EntryResult] | HubError] = {}
    parsed: list[tuple[int, list[EntryRequest]]] = []
    for index, raw in enumerate(bundles):
        try:
            parsed.append((index, _transaction_items(read_entries(raw, session.base_url))))
        except HubError as error:
            outcomes[index] = error
    async with session.hub.store.claims.holding([key for _i, items in parsed for key in _claims(items)]):
        while parsed:
            parsed = parsed[await _transaction_group(session, parsed, outcomes):]
    return [outcomes[index] for index in range(len(bundles))]


async def _transaction_group(session: Session, parsed: list[tuple[int, list[EntryRequest]]],
                             outcomes: dict[int, list[EntryResult] | HubError]) -> int:
    """Commit the first Bundles of ``parsed`` in one server transaction; how many were answered."""
    planned: list[tuple[int, list[_Planned]]] = []
    mark = session.audit.mark() if session.audit is not None else None
    try:
        async with session.hub.store.transaction() as tx:
            for index, items in parsed:
                try:
                    planned.append((index, await _commit_planned(session, tx, items)))
                except DependsOnOwnWrites:
                    if not planned:
                        raise  # not expected (nothing written yet): run alone below
                    break
    except HubError as error:
        _rewind(session, mark)
        if not planned:  # the first Bundle of a group fails as it would alone
            outcomes[parsed[0][0]] = error
            return 1
        return await _transaction_group(session, parsed[:len(planned)], outcomes)  # the ones before it, again
    except (VersionTaken, PyMongoError, DependsOnOwnWrites):
        _rewind(session, mark)
        for index, items in parsed[:max(len(planned), 1)]:
            try:
                outcomes[index] = await _transaction(session, items)
            except HubError as error:
                outcomes[index] = error
        return max(len(planned), 1)
    for index, plans in planned:
        outcomes[index] = await _answered(session, plans)
    return len(planned)


def _rewind(session: Session, mark: int | None) -> None:
    """What a rolled-back group touched is no longer in the audit record."""
    if session.audit is not None and mark is not None:
        session.audit.rewind(mark)


def _claims(items: list[EntryRequest]) -> list[str]:
    """The conditional criteria these entries may create under (``ifNoneExist``, conditional PUT): held
    while they are searched and written, so that two Bundles never both create (``store/claims.py``); and
    the match keys of their Patients (``linking/linker.py``): taken all at once, before the transaction
    holds the store's gate, two Bundles never wait for each other's."""
    keys = []
    for item in items:
        if item.target.rtype == "Patient" and item.method in ("POST", "PUT") and isinstance(item.resource, dict):
            keys += match_claims(item.resource)
        if item.method == "POST" and item.if_none_exist is not None:
            keys.append(claim_key(item.target.rtype, item.if_none_exist))
        elif item.method == "PUT" and item.target.rid is None and item.target.query is not None:
            keys.append(claim_key(item.target.rtype, item.target.query))
    return keys


async def _commit_planned(session: Session, tx: Transaction, items: list[EntryRequest]) -> list[_Planned]:
    """Steps 1 to 4 of a transaction inside ``tx`` (which other transaction Bundles may share: ``transactions``).
    Nothing is sent to the store before the writes: planning inside the block takes no lock."""
    inside = session.within(tx)
    plans = [_Planned(item) for item in items]
    await _run_each(plans, lambda p: _target(inside, p))
    _refuse_shared_targets(plans)
    writes = sorted((p for p in plans if p.item.method in WRITES), key=lambda p: _ORDER[p.item.method])
    if any(p.key in tx.changes for p in writes if not (p.item.method == "POST" and p.found is not None)):
        raise DependsOnOwnWrites("a resource this transaction writes was written earlier in the same group")
    names = _local_names(plans)
    created_by = {(p.item.target.rtype, _criteria(p.item.if_none_exist)): p.key for p in plans
                  if p.item.method == "POST" and p.item.if_none_exist is not None}
    known: dict[str, str] = {}
    # each resource goes to a validation worker once its references are rewritten: validated there while
    # the hub prepares the rest and stores the first ones (fhir/validation_ahead.py)
    with session.hub.writer.validation.ahead(len(writes)) as handover:
        await _run_each(plans, lambda p: _rewrite(inside, p, names, created_by, known, handover))
        handover.flush()
        written = {p.key for p in writes}
        await _run_each([p for p in plans if p.item.method in ("GET", "HEAD")],
                        lambda p: _prepare_get(inside, p, written))
        await session.hub.writer.pipeline.plan_group(tx, _contents(writes))
        for plan in writes:
            try:
                plan.result = EntryResult.of_write(await _write_planned(inside, plan))
            except HubError as error:
                raise in_entry(plan.item.index, error) from None
    return plans


async def _answered(session: Session, plans: list[_Planned]) -> list[EntryResult]:
    """Step 5, once committed: the GET entries the writes could change, then every entry's result."""
    for plan in plans:
        if plan.result is None:
            try:
                plan.result = await _get(session, plan.item, plan.query)
            except HubError as error:  # after the commit: reported in the entry, as a batch would
                plan.result = EntryResult.of_error(in_entry(plan.item.index, error))
    return [p.result for p in plans if p.result is not None]


def _contents(writes: list[_Planned]) -> dict[str, dict[str, Any]]:
    """What each write stores, by key, where it is known before writing (a POST that creates, a PUT)."""
    return {p.key: p.resource for p in writes if p.key is not None and p.resource is not None
            and not (p.item.method == "POST" and p.found is not None)}  # an ifNoneExist match stores nothing


async def _run_each(plans: list[_Planned], step: Callable[[_Planned], Awaitable[None]]) -> None:
    for plan in plans:
        try:
            await step(plan)
        except HubError as error:
            raise in_entry(plan.item.index, error) from None


async def _target(session: Session, plan: _Planned) -> None:
    """Which resource a write entry acts on, decided before anything is written."""
    item, t = plan.item, plan.item.target
    if item.method == "POST":
        assert item.resource is not None
        if item.if_none_exist is not None:
            plan.found = await existing_match(session, t.rtype, item.if_none_exist)
            if plan.found is not None:  # a bad body is refused even when a match exists (else: at the commit)
                validate_resource(item.resource, expected_type=t.rtype)
        plan.key = plan.found.key if plan.found is not None else f"{t.rtype}/{session.hub.writer.new_id()}"
    elif item.method in ("PUT", "PATCH", "DELETE"):
        if t.rid is not None:
            plan.key = t.key
            return
        what = {"PUT": "Conditional update", "PATCH": "Conditional patch", "DELETE": "Conditional delete"}[item.method]
        plan.found = await single_match(session, t.rtype, t.query or "", what=what)
        if plan.found is not None:
            plan.key = plan.found.key
        elif item.method == "PUT":
            body_id = (item.resource or {}).get("id")
            plan.key = f"{t.rtype}/{body_id if body_id is not None else session.hub.writer.new_id()}"
        elif item.method == "PATCH":
            raise NotFound(f"Conditional patch: no {t.rtype} matches the criteria")


def _refuse_duplicate_full_urls(items: Sequence[EntryRequest | EntryProblem]) -> None:
    seen: dict[str, int] = {}
    for item in items:
        if item.full_url is None:
            continue
        if item.full_url in seen:
            raise BadRequest(f"Bundle.entry[{item.index}].fullUrl: {item.full_url!r} is also the fullUrl of "
                             f"entry {seen[item.full_url]}; each entry of a transaction needs its own",
                             expression=[f"Bundle.entry[{item.index}].fullUrl"])
        seen[item.full_url] = item.index


def _refuse_shared_targets(plans: list[_Planned]) -> None:
    """Two entries may not act on one resource, whether named directly or found by the same criteria."""
    by_key: dict[str, int] = {}
    by_criteria: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for plan in plans:
        item = plan.item
        if item.method not in WRITES:
            continue
        where = f"Bundle.entry[{item.index}]"
        criteria = item.if_none_exist if item.method == "POST" else item.target.query
        if criteria is not None:
            named = (item.target.rtype, _criteria(criteria))
            if named in by_criteria:
                raise BadRequest(f"{where}: entry {by_criteria[named]} has the same conditional criteria on "
                                 f"{item.target.rtype}; the result would depend on the processing order",
                                 expression=[f"{where}.request"], code="business-rule")
            by_criteria[named] = item.index
        if plan.key is not None:
            if plan.key in by_key:
                raise BadRequest(f"{where}: {plan.key} is also written by entry {by_key[plan.key]}; a transaction "
                                 "may change each resource once", expression=[f"{where}.request"],
                                 code="business-rule")
            by_key[plan.key] = item.index


def _criteria(query: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(parse_qsl(query.lstrip("?"), keep_blank_values=True)))


def _local_names(plans: list[_Planned]) -> dict[str, str]:
    """fullUrl -> Type/id for every entry that writes a resource; a fullUrl ending in ``Type/id`` also
    results to that relative form, when the server gave the resource another id."""
    names: dict[str, str] = {}
    targets = {p.key for p in plans if p.key is not None and p.item.method in ("PUT", "PATCH", "DELETE")}
    for plan in plans:
        url, key = plan.item.full_url, plan.key
        if url is None or key is None or plan.item.method == "DELETE":
            continue
        names[url] = key
        tail = "/".join(url.rsplit("/", 2)[-2:])
        if "/" in tail and not is_local(url) and tail != key:
            if tail in targets:
                raise BadRequest(f"Bundle.entry[{plan.item.index}].fullUrl: {url!r} names {tail}, which another "
                                 "entry of this transaction writes", expression=[f"Bundle.entry[{plan.item.index}]"
                                                                                  ".fullUrl"], code="business-rule")
            names[tail] = key
    return names


async def _rewrite(session: Session, plan: _Planned, names: dict[str, str],
                   created_by: dict[tuple[str, tuple[tuple[str, str], ...]], str | None], known: dict[str, str],
                   handover: Handover | None = None) -> None:
    item = plan.item
    if item.resource is None or item.method not in ("POST", "PUT"):
        return
    plan.resource = rewrite(item.resource, await _resolve_references(session, item, names, created_by, known))
    # Not handed over when a match was found: an ifNoneExist match stores nothing, and a conditional update
    # stores a copy carrying the match's id, which the writer validates itself.
    if handover is not None and plan.found is None:
        handover.add(item.target.rtype, plan.resource)


async def _resolve_references(session: Session, item: EntryRequest, names: dict[str, str],
                              created_by: dict[tuple[str, tuple[tuple[str, str], ...]], str | None],
                              known: dict[str, str]) -> dict[str, str]:
    """What each reference of the entry's resource becomes: entries' new ids, conditional references' match."""
    mapping: dict[str, str] = {}
    for value in sorted(references_in(item.resource)):
        if value in names:
            mapping[value] = names[value]
        elif is_local(value):
            raise BadRequest(f"Bundle.entry[{item.index}].resource: reference {value!r} is not the fullUrl of any "
                             "entry of this Bundle" + ("" if names else " (a batch's entries cannot refer to "
                                                                        "each other: send a transaction)"),
                             expression=[f"Bundle.entry[{item.index}].resource"])
        elif (conditional := conditional_reference(value)) is not None:
            rtype, criteria = conditional
            in_bundle = created_by.get((rtype, _criteria(criteria)))
            if in_bundle is not None:
                mapping[value] = in_bundle
            else:  # Synthea refers to one practitioner from hundreds of entries: search once per Bundle
                if value not in known:
                    known[value] = await _one_match(session, rtype, criteria, value)
                mapping[value] = known[value]
    return mapping


async def _one_match(session: Session, rtype: str, criteria: str, value: str) -> str:
    if not is_resource_type(rtype):
        raise BadRequest(f"Conditional reference {value!r}: {rtype!r} is not a resource type", code="not-supported")
    matches = await session.reader.conditional(rtype, criteria, what=f"Conditional reference {value!r}")
    if len(matches) != 1:
        found = "no resource" if not matches else f"{len(matches)} resources"
        raise PreconditionFailed(f"Conditional reference {value!r} matches {found}; it must match exactly one",
                                 code="not-found" if not matches else "multiple-matches")
    return matches[0].key


async def _prepare_get(session: Session, plan: _Planned, written: set[str | None]) -> None:
    """A GET the transaction's writes cannot change is answered now, so that a failing read rolls back."""
    t = plan.item.target
    if t.rid is None:
        plan.query = _query(session, plan.item)
    elif t.key not in written:
        plan.result = await _get(session, plan.item)


async def _write_planned(session: Session, plan: _Planned) -> Written:
    item, t = plan.item, plan.item.target
    if_match = _if_match(item)
    if item.method == "POST":
        if plan.found is not None:
            return Written(plan.found, 200, "Found existing")
        assert plan.resource is not None and plan.key is not None
        return await create_resource(session, t.rtype, plan.resource, rid=plan.key.split("/", 1)[1])
    if plan.key is None:  # a conditional delete that matched nothing
        return NOTHING
    rid = plan.key.split("/", 1)[1]
    if item.method == "PUT":
        assert plan.resource is not None
        if t.rid is None:
            return await update_matched(session, t.rtype, plan.found, plan.resource, if_match=if_match, new_id=rid)
        return await update(session, t.rtype, rid, plan.resource, if_match=if_match)
    if item.method == "PATCH":
        return await patch(session, t.rtype, rid, _patch_of(item), if_match=if_match)
    return await delete(session, t.rtype, rid, if_match=if_match)


# ---------------------------------------------------------------------------------------------- shared parts
async def _get(session: Session, item: EntryRequest, query: SearchQuery | None = None) -> EntryResult:
    t = item.target
    head = item.method == "HEAD"
    if t.rid is None:
        found = await search.run(session, query or _query(session, item))
        return EntryResult(200, search=found, body=not head)
    if t.vid is not None:
        version = await vread(session, t.rtype, t.rid, int(t.vid) if len(t.vid) <= 10 else None)
    else:
        version = await read(session, t.rtype, t.rid)
    if item.if_none_match is not None and parse_etag(item.if_none_match, header="ifNoneMatch") == version.vid:
        return EntryResult(304, version=version, body=False)
    return EntryResult(200, version=version, body=not head)


def _query(session: Session, item: EntryRequest) -> SearchQuery:
    return search.parse_query(session, item.target.rtype, parse_qsl(item.target.query or "", keep_blank_values=True))


def _if_match(item: EntryRequest) -> int | None:
    if item.if_match is None:
        return None
    return parse_etag(item.if_match, header=f"Bundle.entry[{item.index}].request.ifMatch")


def _patch_of(item: EntryRequest) -> Applier:
    where = f"Bundle.entry[{item.index}].resource"
    resource = item.resource or {}
    if resource.get("resourceType") == "Binary":
        return binary_json_patch(resource, where=where)
    if resource.get("resourceType") == "Parameters":
        return fhirpath_patch(resource, where=where)
    raise BadRequest(f"{where}: a PATCH entry carries a FHIRPath Patch (Parameters) or a JSON Patch as a "
                     "Binary (contentType application/json-patch+json)", expression=[where])
