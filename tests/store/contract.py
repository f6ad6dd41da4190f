"""The store contract: every query and update shape ``MongoStore`` sends, with a plain-Python reference.

Each ``Shape`` builds concrete arguments for one kind of request from generated data. The contract test
runs it against the configured server and against ``reference_*`` below over the same documents; the
coverage test records what the store really sends during a workload and requires every recorded shape to
be one of these. A server answering a shape differently (nx-27017 does for several, see the README) fails
the suite instead of giving a clinician a wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from fhir_hub.store.filters import matches as reference_match
from fhir_hub.store.index_docs import match_filter
from fhir_hub.store.match_blocks import block_field
from fhir_hub.store.plan import OPTIONAL_FIELDS, set_document
from fhir_hub.store.records import EntryMatch

Doc = dict[str, Any]
Build = Callable[[dict[str, Any]], dict[str, Any]]


# ----------------------------------------------------------------------------- shape of a request
_SLOT_FIELD = re.compile(r"^([kcslhvb])[0-9]$")


def shape(value: Any) -> Any:
    """Values replaced by their type names; operators and field names kept, but for the slot number of a
    search-index or match-block field (``k3`` -> ``k#``, ``b5`` -> ``b#``): each slot is the same shape."""
    if isinstance(value, dict):
        return tuple(sorted({(_SLOT_FIELD.sub(r"\1#", k), shape(v)) for k, v in value.items()}))
    if isinstance(value, list | tuple):
        return ("[]", *sorted({repr(shape(v)) for v in value}))
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return type(value).__name__


# ---------------------------------------------------------------------------- reference semantics
def _apply(doc: Doc, update: Doc) -> None:
    for name in update.get("$unset", {}):
        doc.pop(name, None)
    doc.update(update.get("$set", {}))


def reference_update_one(docs: list[Doc], query: Doc, update: Doc, *, upsert: bool) -> None:
    for doc in docs:
        if reference_match(doc, query):
            _apply(doc, update)
            return
    if upsert:
        new = {k: v for k, v in query.items() if not isinstance(v, dict) and not k.startswith("$")}
        _apply(new, update)
        docs.append(new)


# --------------------------------------------------------------------------------- the shapes
@dataclass(frozen=True)
class Shape:
    """One request kind: ``build(params)`` gives its arguments, drawn from the generated documents."""

    name: str
    collection: str  # current, history, index, audit, meta, claims, blocks, links, decisions, subjects, assertions,
    # clients, epoch
    kind: str  # find | count | update_one | delete_many
    build: Build
    upsert: bool = False


def _some(d: dict[str, Any], field: str, default: Any) -> Any:
    return d["pick"](field, default)


HISTORY_ORDER = [("ts", -1), ("key", -1), ("vid", -1)]


def _history(collection: str, scope: str, since: bool, before: bool) -> Shape:
    def build(d: dict[str, Any]) -> dict[str, Any]:
        query: Doc = {}
        if scope == "type":
            query["type"] = _some(d, "type", "Patient")
        if since:
            query["ts"] = {"$gte": d["ts"]}
        if before:
            ts, key, vid = d["ts"], _some(d, "key", "Patient/a"), d["vid"]
            query["$or"] = [{"ts": {"$lt": ts}}, {"ts": ts, "key": {"$lt": key}},
                            {"ts": ts, "key": key, "vid": {"$lt": vid}}]
        if scope == "instance":
            query["key"] = _some(d, "key", "Patient/a")
        return {"query": query, "sort": HISTORY_ORDER, "limit": d["limit"]}

    name = f"{collection} history {scope}{' since' if since else ''}{' before' if before else ''}"
    return Shape(name, collection, "find", build)


def _history_total(collection: str, scope: str, since: bool, kind: str) -> Shape:
    """A history's total: counted (``count``), or every version's facts read to judge each (``find``)."""
    def build(d: dict[str, Any]) -> dict[str, Any]:
        query: Doc = {"type": _some(d, "type", "Patient")} if scope == "type" else {}
        if since:
            query["ts"] = {"$gte": d["ts"]}
        return {"query": query}

    return Shape(f"{collection} history {scope}{' since' if since else ''} {kind}", collection, kind, build)


def _versions_of(collection: str, since: bool, *, older_than: bool = False) -> Shape:
    """Counting the versions of some resources (a compartment's), or a resource's older versions."""
    def build(d: dict[str, Any]) -> dict[str, Any]:
        if older_than:
            query: Doc = {"key": _some(d, "key", "Patient/a"), "vid": {"$lt": d["vid"]}}
        else:
            query = {"_id" if collection == "current" else "key": {"$in": d["keys"]}}
        if since:
            query["ts"] = {"$gte": d["ts"]}
        return {"query": query}

    name = "older versions of a resource" if older_than else "versions of resources"
    return Shape(f"count {collection} {name}{' since' if since else ''}", collection, "count", build)


def _version_variant(d: dict[str, Any], *, deleted: bool, in_compartment: bool) -> Doc:
    new = dict(d["new_version"])
    if deleted:
        new.update(deleted=True)
        new.pop("json", None)
        new.pop("live", None)
    if not in_compartment:
        new.pop("pc", None)
    return new


def _replace_current(deleted: bool, pending: bool, in_compartment: bool) -> Shape:
    def build(d: dict[str, Any]) -> dict[str, Any]:
        new = _version_variant(d, deleted=deleted, in_compartment=in_compartment)
        if pending:
            new["pending"] = True
        return {"query": {"_id": _some(d, "_id", "Patient/a"), "vid": d["vid"]},
                "update": set_document(new, optional=OPTIONAL_FIELDS)}

    name = f"replace current{' by a deletion' if deleted else ''}{' pending' if pending else ''}"
    return Shape(name + (" in a compartment" if in_compartment else ""), "current", "update_one", build)


def _copy_to_history(deleted: bool, in_compartment: bool) -> Shape:
    def build(d: dict[str, Any]) -> dict[str, Any]:
        copy = {k: v for k, v in _version_variant(d, deleted=deleted, in_compartment=in_compartment).items()
                if k not in ("live", "w", "pending")}
        copy["_id"] = f"{copy['key']}/{d['vid']}"
        return {"query": {"_id": copy["_id"]}, "update": set_document(copy)}

    name = f"copy {'a deletion ' if deleted else ''}to history{' in a compartment' if in_compartment else ''}"
    return Shape(name, "history", "update_one", build, upsert=True)


def _audit_filter(d: dict[str, Any], patients: bool, ids: bool, before: bool, since: bool,
                  withheld: bool = False, emergency: bool | None = None, flagged: str | None = None) -> Doc:
    """``emergency``: entries of emergency requests only (True) or the others (False); ``flagged``:
    emergency request entries of one facility ("facility") or of any ("any")."""
    query: Doc = {}
    if patients:
        query["p"] = {"$in": d["audit_patients"]}
    if ids or withheld:  # withheld: events an access decision hides, left out of pages and counts
        query["_id"] = {**({"$in": d["audit_ids"]} if ids else {}),
                        **({"$nin": d["audit_withheld"]} if withheld else {})}
    if since:
        query["ts"] = {"$gte": d["ts"]}
    if emergency is not None:
        query["e"] = 1 if emergency else {"$exists": False}
    if flagged == "facility":
        query["ef"] = _some(d, "ef", "79001")
    elif flagged == "any":
        query.update(e=1, ef={"$exists": True})
    if before:
        query["$or"] = [{"ts": {"$lt": d["ts"]}}, {"ts": d["ts"], "_id": {"$lt": _some(d, "_id", "a")}}]
    return query


def _audit_page(patients: bool, ids: bool, before: bool, since: bool, withheld: bool) -> Shape:
    flags = [n for n, on in (("patients", patients), ("ids", ids), ("before", before), ("since", since),
                             ("withheld", withheld)) if on]
    return Shape("audit page " + " ".join(flags), "audit", "find",
                 lambda d: {"query": _audit_filter(d, patients, ids, before, since, withheld),
                            "sort": [("ts", -1), ("_id", -1)], "limit": d["limit"]})


def _access_log_page(emergency: bool, before: bool, withheld: bool) -> Shape:
    """A resident's access log (``AuditLog.page`` with ``emergency``): emergency entries, then the others."""
    flags = "".join(f" {n}" for n, on in (("before", before), ("withheld", withheld)) if on)
    return Shape(f"audit page patients {'emergency' if emergency else 'not emergency'}{flags}", "audit", "find",
                 lambda d: {"query": _audit_filter(d, True, False, before, False, withheld, emergency=emergency),
                            "sort": [("ts", -1), ("_id", -1)], "limit": d["limit"]})


def _emergencies(flagged: str, before: bool, withheld: bool, count: bool) -> Shape:
    """A facility's (or the operator's) review of emergency accesses (``AuditLog.emergencies``)."""
    flags = "".join(f" {n}" for n, on in (("before", before), ("withheld", withheld)) if on)
    name = f"audit emergencies {'count' if count else 'page'} of {flagged}{flags}"
    if count:
        return Shape(name, "audit", "count", lambda d: {"query": _audit_filter(d, False, False, False, False,
                                                                                withheld, flagged=flagged)})
    return Shape(name, "audit", "find",
                 lambda d: {"query": _audit_filter(d, False, False, before, False, withheld, flagged=flagged),
                            "sort": [("ts", -1), ("_id", -1)], "limit": d["limit"]})


def _audit_count(patients: bool, ids: bool, withheld: bool) -> Shape:
    flags = "".join(f" {n}" for n, on in (("patients", patients), ("ids", ids), ("withheld", withheld)) if on)
    return Shape(f"audit count{flags}", "audit", "count",
                 lambda d: {"query": _audit_filter(d, patients, ids, False, False, withheld)})


_MATCHES: dict[str, Callable[[dict[str, Any]], EntryMatch]] = {
    "key": lambda d: EntryMatch(_some(d, "k", "k|x")),
    "key prefix": lambda d: EntryMatch(d["prefix"], prefix=True),
    "key prefix and contains": lambda d: EntryMatch(d["prefix"], prefix=True, contains=d["contains"]),
    "key range": lambda d: EntryMatch(d["low_key"], upper=d["high_key"]),
}
_WITHIN = ("", " of one resource", " of given resources")


def _entries(kind: str, with_system: bool, within: str, scoped: bool) -> Shape:
    """The index queries ``match_filter`` builds, as the store sends them (the filter is the real one)."""
    def build(d: dict[str, Any]) -> dict[str, Any]:
        base = _MATCHES[kind](d)
        resources = {"": None, " of one resource": tuple(d["keys"][:1]) or ("Patient/a",),
                     " of given resources": tuple(d["keys"]) + ("Patient/none", "Patient/absent")}[within]
        match = replace(base, system=_some(d, "s", "") if with_system else None, resources=resources,
                        scope=d["scope"] if scoped else None)
        return {"query": match_filter(match)}

    name = f"entries by {kind}{' in a system' if with_system else ''}{within}{' in a compartment' if scoped else ''}"
    return Shape(name, "index", "find", build)


def _updated(low: bool, high: bool) -> Shape:
    def build(d: dict[str, Any]) -> dict[str, Any]:
        bounds = {**({"$gte": d["ts"]} if low else {}), **({"$lte": d["ts"] + d["limit"]} if high else {})}
        return {"query": {"live": _some(d, "type", "Patient"), "ts": bounds}}

    return Shape(f"live updated{' from' if low else ''}{' until' if high else ''}", "current", "find", build)


SHAPES: tuple[Shape, ...] = (
    Shape("current by _id", "current", "find", lambda d: {"query": {"_id": _some(d, "_id", "Patient/a")},
                                                          "limit": 1}),
    Shape("history version by _id", "history", "find",
          lambda d: {"query": {"_id": _some(d, "_id", "Patient/a/1")}, "limit": 1}),
    Shape("live current of keys", "current", "find",
          lambda d: {"query": {"_id": {"$in": d["keys"]}, "live": {"$exists": True}}}),
    Shape("current of keys", "current", "find", lambda d: {"query": {"_id": {"$in": d["keys"]}}}),
    Shape("live page", "current", "find",
          lambda d: {"query": {"live": _some(d, "type", "Patient")}, "sort": [("_id", 1)], "limit": d["limit"]}),
    Shape("live page after", "current", "find",
          lambda d: {"query": {"live": _some(d, "type", "Patient"), "_id": {"$gt": _some(d, "_id", "Patient/a")}},
                     "sort": [("_id", 1)], "limit": d["limit"]}),
    Shape("count live", "current", "count", lambda d: {"query": {"live": _some(d, "type", "Patient")}}),
    Shape("count live in a key range", "current", "count",
          lambda d: {"query": {"live": _some(d, "type", "Patient"),
                               "_id": {"$gt": d["low_key"], "$lt": d["high_key"]}}}),
    Shape("pending current", "current", "find", lambda d: {"query": {"pending": True}}),
    Shape("current in key order", "current", "find",
          lambda d: {"query": {}, "sort": [("_id", 1)], "limit": d["limit"]}),
    Shape("current in key order after", "current", "find",
          lambda d: {"query": {"_id": {"$gt": _some(d, "_id", "Patient/a")}}, "sort": [("_id", 1)],
                     "limit": d["limit"]}),
    Shape("store fact by _id", "meta", "find", lambda d: {"query": {"_id": _some(d, "_id", "search_index")},
                                                          "limit": 1}),
    Shape("set a store fact", "meta", "update_one",
          lambda d: {"query": {"_id": _some(d, "_id", "search_index")},
                     "update": {"$set": {"format": f"{d['vid']} Asia/Ho_Chi_Minh"}}},
          upsert=True),
    Shape("consent epoch and open markers", "epoch", "find", lambda d: {"query": {}}),
    Shape("remove open markers by _id", "epoch", "delete_many",
          lambda d: {"query": {"_id": {"$in": [_some(d, "_id", "open:a"), "open:b"]}}}),
    Shape("remove an open marker", "epoch", "delete_many", lambda d: {"query": {"_id": _some(d, "_id", "open:a")}}),
    Shape("move the consent epoch on", "epoch", "update_one",
          lambda d: {"query": {"_id": _some(d, "_id", "epoch")}, "update": {"$set": {"w": f"t{d['vid']}"}}},
          upsert=True),
    *(_history(coll, scope, since, before)
      for coll, scopes in (("current", ("system", "type")), ("history", ("system", "type", "instance")))
      for scope in scopes for since in (False, True) for before in (False, True)),
    *(_history_total(coll, scope, since, kind) for coll in ("current", "history") for scope in ("system", "type")
      for since in (False, True) for kind in ("count", "find")),
    *(_versions_of(coll, since) for coll in ("current", "history") for since in (False, True)),
    *(_versions_of("history", since, older_than=True) for since in (False, True)),
    *(_replace_current(deleted, pending, in_compartment)
      for deleted in (False, True) for pending in (False, True) for in_compartment in (False, True)),
    *(_copy_to_history(deleted, in_compartment) for deleted in (False, True) for in_compartment in (False, True)),
    Shape("settle a write", "current", "update_one",
          lambda d: {"query": {"_id": _some(d, "_id", "Patient/a"), "w": _some(d, "w", "t")},
                     "update": {"$unset": {"pending": ""}}}),
    Shape("settle a version", "current", "update_one",
          lambda d: {"query": {"_id": _some(d, "_id", "Patient/a"), "vid": d["vid"]},
                     "update": {"$unset": {"pending": ""}}}),
    *(_entries(kind, with_system, within, scoped) for kind in _MATCHES for with_system in (False, True)
      for within in _WITHIN for scoped in (False, True)),
    Shape("live keys", "current", "find", lambda d: {"query": {"live": _some(d, "type", "Patient")}}),
    *(_updated(low, high) for low, high in ((True, False), (False, True), (True, True))),
    Shape("entries of a resource", "index", "find", lambda d: {"query": {"r": _some(d, "r", "Patient/a")}}),
    Shape("delete entries by _id", "index", "delete_many", lambda d: {"query": {"_id": {"$in": d["entry_ids"]}}}),
    Shape("audit entry by _id", "audit", "find", lambda d: {"query": {"_id": _some(d, "_id", "a")}, "limit": 1}),
    Shape("audit entries stored", "audit", "find", lambda d: {"query": {"_id": {"$in": d["audit_ids"]}}}),
    *(_audit_page(patients, ids, before, since, withheld) for patients in (False, True) for ids in (False, True)
      for before in (False, True) for since in (False, True) for withheld in (False, True)),
    *(_audit_count(patients, ids, withheld) for patients in (False, True) for ids in (False, True)
      for withheld in (False, True)),
    *(_access_log_page(emergency, before, withheld) for emergency in (True, False) for before in (False, True)
      for withheld in (False, True)),
    *(_emergencies(flagged, before, withheld, False) for flagged in ("facility", "any") for before in (False, True)
      for withheld in (False, True)),
    *(_emergencies(flagged, False, withheld, True) for flagged in ("facility", "any") for withheld in (False, True)),
    Shape("match blocks of a resource", "blocks", "find", lambda d: {"query": {"r": _some(d, "r", "Patient/a")}}),
    Shape("delete match blocks by _id", "blocks", "delete_many", lambda d: {"query": {"_id": {"$in": d["block_ids"]}}}),
    Shape("Patients under a block key", "blocks", "find",
          lambda d: {"query": {block_field(d["block_key"]): d["block_key"]}}),
    Shape("link of a resource", "links", "find", lambda d: {"query": {"r": _some(d, "r", "Patient/a")}}),
    Shape("delete links by _id", "links", "delete_many", lambda d: {"query": {"_id": {"$in": d["link_ids"]}}}),
    Shape("records linked to a master", "links", "find", lambda d: {"query": {"m": _some(d, "m", "Patient/a")}}),
    Shape("links of records", "links", "find", lambda d: {"query": {"_id": {"$in": d["link_ids"]}}}),
    Shape("records linked to any of these masters", "links", "find", lambda d: {"query": {"m": {"$in": d["masters"]}}}),
    Shape("consent subjects of a resource", "subjects", "find",
          lambda d: {"query": {"r": _some(d, "r", "Consent/a")}}),
    Shape("delete consent subjects by _id", "subjects", "delete_many",
          lambda d: {"query": {"_id": {"$in": d["subject_ids"]}}}),
    Shape("consents about these patients", "subjects", "find", lambda d: {"query": {"p": {"$in": d["patients"]}}}),
    Shape("consents about one patient", "subjects", "find", lambda d: {"query": {"p": _some(d, "p", "a")}}),
    Shape("redirects of masters", "links", "find",
          lambda d: {"query": {"_id": {"$in": d["link_ids"]}, "k": "redirect"}}),
    Shape("distinct pairs by _id", "decisions", "find",
          lambda d: {"query": {"_id": {"$in": [_some(d, "_id", "distinct|Patient/a|Patient/b"), "absent"]}}}),
    Shape("records on the review list", "links", "find",
          lambda d: {"query": {"review": 1}, "sort": [("_id", 1)], "limit": d["limit"]}),
    Shape("a distinct pair", "decisions", "find",
          lambda d: {"query": {"_id": _some(d, "_id", "distinct|Patient/a|Patient/b")}, "limit": 1}),
    Shape("set a distinct pair", "decisions", "update_one",
          lambda d: {"query": {"_id": _some(d, "_id", "distinct|Patient/a|Patient/b")},
                     "update": {"$set": {"k": "distinct", "a": "Patient/a", "b": "Patient/b", "by": "x",
                                         "at": d["ts"]}}}, upsert=True),
    Shape("clear a distinct pair", "decisions", "delete_many",
          lambda d: {"query": {"_id": _some(d, "_id", "distinct|Patient/a|Patient/b")}}),
    *(Shape(f"decisions naming a record ({field})", "decisions", "find",
            lambda d, field=field: {"query": {field: _some(d, field, "Patient/a")}}) for field in ("a", "b")),
    Shape("claims of keys", "claims", "find", lambda d: {"query": {"_id": {"$in": d["claim_keys"]}}}),
    Shape("give claims back", "claims", "delete_many",
          lambda d: {"query": {"_id": {"$in": d["claim_keys"]}, "o": _some(d, "o", "t1")}}),
    Shape("take over a stale claim", "claims", "delete_many",
          lambda d: {"query": {"_id": _some(d, "_id", "Patient?absent"), "o": _some(d, "o", "t1")}}),
    Shape("forget expired client assertions", "assertions", "delete_many",
          lambda d: {"query": {"exp": {"$lt": d["expiry"]}}}),
    Shape("a backend client's registration", "clients", "find",
          lambda d: {"query": {"_id": _some(d, "_id", "c9")}, "limit": 1}),
    Shape("register a backend client", "clients", "update_one",
          lambda d: {"query": {"_id": _some(d, "_id", "c9")}, "update": {"$set": {"reg": '{"scope": "x"}'}}},
          upsert=True),
    Shape("remove a backend client", "clients", "delete_many", lambda d: {"query": {"_id": _some(d, "_id", "c9")}}),
)
