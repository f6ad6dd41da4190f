"""Run every store shape against the configured server and against the plain-Python reference."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import DeleteMany, InsertOne, MongoClient, UpdateOne
from pymongo.database import Database
from pymongo.errors import ClientBulkWriteException

from fhir_hub.linking.elements import Decision, with_master
from fhir_hub.linking.golden import redirected_master
from fhir_hub.matching import block_keys, features
from fhir_hub.store.consent_subjects import ConsentSubjects
from fhir_hub.store.count import count_pipeline
from fhir_hub.store.filters import find as reference_find
from fhir_hub.store.filters import matches as reference_match
from fhir_hub.store.index_docs import INDEXED, pack
from fhir_hub.store.match_blocks import MatchBlocks
from fhir_hub.store.patient_links import PatientLinks
from fhir_hub.store.records import SearchEntry, StoredVersion
from fhir_hub.store.schema import BLOCK_FIELDS
from tests.store.contract import (
    SHAPES,
    Doc,
    Shape,
    reference_update_one,
)

KEYS = ["Patient/a", "Patient/b", "Patient/c", "Observation/a", "Observation/x.1", "Encounter/z-9"]
SEARCH_KEYS = ["Patient|identifier|1", "Patient|identifier|12", "Patient|identifier|a\\|b", "Observation|identifier|1",
               "Patient|name|nguyen", "Patient|name|nguyet", "Patient|name|tran van", "Patient|identifier.x|1",
               "Observation|date|04611686018427387904", "Observation|date|04611686018427388000",
               "Observation|date|04611686018527387904", "Observation|date:end|04611686018527387904",
               "Observation|value-quantity|#", "Patient|name|#present", "Patient|name|ễ", "Patient|name|ễa",
               "Patient|name|ệ", "Patient|name|z"]
SCOPES = ["a", "b", "x.1"]
SYSTEMS = [None, "", "urn:a", "urn:a|b", "http://fhir.hl7.org.vn/core/sid/cccd"]
PREFIXES = ["Patient|identifier|", "Patient|", "Patient|name|ễ", "Patient|name|y", "Patient|identifier.",
            "Patient|identifier|a\\|", "nothing",
            "Patient|name|ngu", "Observation|date|"]
COLLECTIONS = {"current": "contract_current", "history": "contract_history", "index": "contract_index",
               "audit": "contract_audit", "meta": "contract_meta", "claims": "contract_claims",
               "blocks": "contract_blocks", "links": "contract_links", "decisions": "contract_decisions",
               "subjects": "contract_subjects", "assertions": "contract_assertions", "clients": "contract_clients",
               "epoch": "contract_epoch"}
INDEXES = {"current": ("type", "ts", "live", "pending"), "history": ("key", "type", "ts"), "index": ("r", *INDEXED),
           "audit": ("p", "ts", "e", "ef"), "meta": (), "claims": (), "blocks": ("r", *BLOCK_FIELDS),
           "links": ("r", "m", "review"), "decisions": ("a", "b"), "subjects": ("r", "p"), "assertions": ("exp",),
           "clients": (), "epoch": ()}


@pytest.fixture(scope="module")
def contract_db(mongodb_uri: str) -> Iterator[Database]:
    client: MongoClient = MongoClient(mongodb_uri)
    db = client[f"contract_{uuid.uuid4().hex[:8]}"]
    for logical, fields in INDEXES.items():
        for field in fields:  # the same single-field indexes as the real schema
            sparse = field in INDEXED or field in (*BLOCK_FIELDS, "review", "e", "ef")
            db[COLLECTIONS[logical]].create_index(field, sparse=sparse)
    yield db
    client.drop_database(db.name)
    client.close()


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, list[Doc]]:
    current: list[Doc] = []
    history: list[Doc] = []
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=6, unique=True)):
        rtype, rid = key.split("/")
        count = draw(st.integers(1, 4))
        for vid in range(1, count + 1):
            deleted = draw(st.integers(0, 3)) == 0
            doc: Doc = {"key": key, "type": rtype, "rid": rid, "vid": vid, "ts": draw(st.integers(0, 12)),
                        "method": "DELETE" if deleted else "PUT", "deleted": deleted}
            if not deleted:
                doc["json"] = draw(st.binary(min_size=1, max_size=12))
            if draw(st.booleans()):
                doc["src"] = "urn:fhir-hub:facility:79001"
                doc["pc"] = draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, unique=True))
            if vid < count or draw(st.integers(0, 4)) == 0:  # superseded, or a copy left by a lost race
                history.append({"_id": f"{key}/{vid}", **doc})
            if vid == count:
                head = {"_id": key, **doc, "w": draw(st.sampled_from(["t1", "t2"]))}
                if not deleted:
                    head["live"] = rtype
                if draw(st.integers(0, 4)) == 0:
                    head["pending"] = True
                current.append(head)
    by_resource: dict[str, set[SearchEntry]] = {}  # packed into documents as the store packs them
    entries = st.tuples(st.sampled_from(KEYS), st.sampled_from(SEARCH_KEYS), st.sampled_from(SYSTEMS))
    for r, k, system in draw(st.lists(entries, max_size=16, unique=True)):
        ranged = draw(st.booleans())
        low, high, text = (draw(st.integers(0, 9)), draw(st.integers(10, 20)), k[-3:]) if ranged else (None, None, None)
        scope = draw(st.sampled_from([None, *SCOPES]))
        further = scope is not None and not draw(st.integers(0, 3))  # a copy for a further compartment
        by_resource.setdefault(r, set()).add(SearchEntry(k, system, low, high, text, scope, further))
    index = [doc for r, found in sorted(by_resource.items()) for doc in pack(r, found)]
    audit = [{"_id": f"ev{i}", "ts": draw(st.integers(0, 12)), "i": "read", "o": 200,
              **({"p": p} if (p := draw(st.sampled_from([None, "a", "b", "c"]))) else {}),
              **_emergency(draw, p)}
             for i in range(draw(st.integers(0, 8)))]
    formats = st.integers(1, 3) | st.sampled_from(["7 Asia/Ho_Chi_Minh", "7 UTC"])  # a number before the zone
    meta = [{"_id": "search_index", "format": draw(formats)}] if draw(st.booleans()) else []
    claims = [{"_id": key, "o": draw(st.sampled_from(["t1", "t2"])), "at": float(draw(st.integers(0, 12)))}
              for key in draw(st.lists(st.sampled_from(CLAIM_KEYS), max_size=4, unique=True))]
    blocks = [doc for r in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True))
              for doc in MatchBlocks().derive(*_patient_version(r, draw(st.sampled_from(PATIENTS))))]
    links = [doc for r in draw(st.lists(st.sampled_from(KEYS[:3]), max_size=3, unique=True))
             for doc in PatientLinks().derive(*_linked_version(r, draw(st.sampled_from(MASTERS)), draw(st.booleans())))]
    decisions = [{"_id": f"distinct|{a}|{b}", "k": "distinct", "a": a, "b": b, "by": "x", "at": 1}
                 for a, b in draw(st.lists(st.sampled_from([("Patient/a", "Patient/b"), ("Patient/b", "Patient/c")]),
                                           max_size=2, unique=True))]
    decisions += [{"_id": f"log|{i:020d}|r", "k": "log", "action": "merge", "a": a, "b": b, "by": "x", "at": i}
                  for i, (a, b) in enumerate(draw(st.lists(st.sampled_from(
                      [("Patient/a", "Patient/b"), ("Patient/c", "Patient/a")]), max_size=3)))]
    subjects = [doc for rid in draw(st.lists(st.sampled_from(["c1", "c2", "c3"]), max_size=3, unique=True))
                for doc in ConsentSubjects().derive(
                    StoredVersion("Consent", rid, 1, 0, "PUT", deleted=False, json=b"{}"),
                    {"resourceType": "Consent", "patient": {"reference": f"Patient/{draw(st.sampled_from('abc'))}"}})]
    assertions = [{"_id": f"{client}|{jti}", "exp": float(draw(st.integers(0, 12))) + draw(st.sampled_from([0, 0.5]))}
                  for client, jti in draw(st.lists(st.tuples(st.sampled_from(["c1", "c2"]), st.sampled_from("jkl")),
                                                   max_size=4, unique=True))]
    clients = [{"_id": cid, "reg": '{"scope": "system/*.rs"}'}
               for cid in draw(st.lists(st.sampled_from(["c1", "c2", "c3"]), max_size=2, unique=True))]
    epoch = [{"_id": "epoch", "w": draw(st.sampled_from(["t1", "t2"]))}] if draw(st.booleans()) else []
    epoch += [{"_id": f"open:{m}", "at": draw(st.integers(0, 9))}
              for m in draw(st.lists(st.sampled_from("abc"), max_size=2, unique=True))]
    return {"current": current, "history": history, "index": index, "audit": audit, "meta": meta, "claims": claims,
            "blocks": blocks, "links": links, "decisions": decisions, "subjects": subjects, "assertions": assertions,
            "clients": clients, "epoch": epoch}


def _emergency(draw: st.DrawFn, patient: str | None) -> dict[str, Any]:
    """An audit entry's emergency fields: none, or the flag, and on a request entry (no patient) the
    facility it is flagged to ("" for a token without one)."""
    if not draw(st.booleans()):
        return {}
    return {"e": 1, **({"ef": draw(st.sampled_from(["79001", "79002", ""]))} if patient is None else {})}


MASTERS = ["Patient/master-1", "Patient/master-2", "Patient/a"]


def _linked_version(key: str, master: str, redirect: bool) -> tuple[StoredVersion, dict[str, Any]]:
    """A source Patient linked to ``master``, or (``redirect``) a master merged into it."""
    rid = key.split("/")[1]
    resource = (redirected_master(rid, master) if redirect
                else with_master({"resourceType": "Patient"}, master,
                                 Decision("cccd", reviews=("Patient/c",) if key == "Patient/b" else ())))
    return StoredVersion("Patient", rid, 1, 0, "PUT", deleted=False, json=b"{}"), resource


CLAIM_KEYS = ["Patient?identifier=s%7C1", "Patient?identifier=s%7C2", "Observation?code=x"]
# Patients whose match blocks the contract stores (the real deriver packs them; keys shared between them)
PATIENTS = [{"resourceType": "Patient", "name": [{"family": "Nguyễn", "given": ["Văn", "An"]}],
             "birthDate": "1985-03-07", "gender": "male",
             "identifier": [{"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "079085001234"}]},
            {"resourceType": "Patient", "name": [{"family": "Nguyen", "given": ["An"]}], "birthDate": "1985-03-07",
             "telecom": [{"system": "phone", "value": "0903123456"}]},
            {"resourceType": "Patient", "name": [{"family": "Huỳnh", "given": ["Thị", "Mai"]}], "birthDate": "1950",
             "telecom": [{"system": "phone", "value": "0903123456"}]}]
BLOCK_KEYS = sorted({key for p in PATIENTS for key in block_keys(features(p))} | {"cccd:000000000000"})


def _patient_version(key: str, patient: dict[str, Any]) -> tuple[StoredVersion, dict[str, Any]]:
    return StoredVersion("Patient", key.replace("/", "-"), 1, 0, "PUT", deleted=False, json=b"{}"), patient


class Params(dict[str, Any]):
    """What a shape's ``build`` reads: values picked from the data set (or outside it)."""


def params_for(data: st.DataObject, docs: dict[str, list[Doc]]) -> Params:
    def pick(field: str, default: Any) -> Any:
        pool = sorted({d[field] for coll in docs.values() for d in coll if field in d}, key=repr) or [default]
        return data.draw(st.sampled_from([*pool, default]))

    entry_ids = [d["_id"] for d in docs["index"]]
    key = data.draw(st.sampled_from(KEYS))
    return Params(
        pick=pick,
        keys=data.draw(st.lists(st.sampled_from(KEYS), max_size=4)),
        claim_keys=data.draw(st.lists(st.sampled_from([*CLAIM_KEYS, "Patient?absent"]), max_size=4)),
        prefix=data.draw(st.sampled_from(PREFIXES)),
        contains=data.draw(st.sampled_from(["n", "yen", "van", "\\|b", ".*", "0"])),
        low_key=data.draw(st.sampled_from(SEARCH_KEYS + ["Observation|date|", "A", "Patient|name|"])),
        high_key=data.draw(st.sampled_from(SEARCH_KEYS + ["Observation|date|~", "z", "Patient|name|~"])),
        audit_patients=data.draw(st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=3)),
        audit_ids=data.draw(st.lists(st.sampled_from([d["_id"] for d in docs["audit"]] + ["ev-none"]), max_size=3)),
        audit_withheld=data.draw(st.lists(st.sampled_from([d["_id"] for d in docs["audit"]] + ["ev-none"]),
                                          min_size=1, max_size=3)),
        limit=data.draw(st.integers(1, 6)),
        ts=data.draw(st.integers(0, 12)),
        expiry=data.draw(st.integers(0, 12)) + data.draw(st.sampled_from([0.0, 0.5])),
        vid=data.draw(st.integers(1, 5)),
        entry_ids=data.draw(st.lists(st.sampled_from([*entry_ids, "absent"]), max_size=4)),
        block_key=data.draw(st.sampled_from(BLOCK_KEYS)),
        block_ids=data.draw(st.lists(st.sampled_from([*(d["_id"] for d in docs["blocks"]), "absent"]), max_size=4)),
        link_ids=data.draw(st.lists(st.sampled_from([*(d["_id"] for d in docs["links"]), "absent"]), max_size=4)),
        masters=data.draw(st.lists(st.sampled_from([*MASTERS, "Patient/absent"]), max_size=3)),
        subject_ids=data.draw(st.lists(st.sampled_from([*(d["_id"] for d in docs["subjects"]), "absent"]),
                                       max_size=3)),
        patients=data.draw(st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=3)),
        scope=data.draw(st.sampled_from([*SCOPES, "z"])),
        new_version={"_id": key, "key": key, "type": key.split("/")[0], "rid": key.split("/")[1],
                     "vid": data.draw(st.integers(1, 6)), "ts": data.draw(st.integers(0, 20)), "method": "PUT",
                     "deleted": False, "json": data.draw(st.binary(min_size=1, max_size=12)),
                     "live": key.split("/")[0], "w": "t3", "src": "urn:fhir-hub:facility:79001",
                     "af": data.draw(st.binary(min_size=1, max_size=12)),
                     "pc": data.draw(st.lists(st.sampled_from(["a", "b", "x.1"]), min_size=1, unique=True))},
    )


def _load(db: Database, docs: dict[str, list[Doc]]) -> None:
    for logical, name in COLLECTIONS.items():
        db[name].delete_many({})
        if docs.get(logical):
            db[name].insert_many([dict(d) for d in docs[logical]])


def _ids(docs: list[Doc]) -> list[Any]:
    return [d["_id"] for d in docs]


def _state(docs: Any) -> list[Doc]:
    return sorted((dict(sorted(d.items())) for d in docs), key=lambda d: str(d["_id"]))


def run_on_server(db: Database, shape: Shape, args: dict[str, Any]) -> Any:
    coll = db[COLLECTIONS[shape.collection]]
    if shape.kind == "find":
        cursor = coll.find(args["query"])
        if args.get("sort"):
            cursor = cursor.sort(args["sort"])
        if args.get("limit"):
            cursor = cursor.limit(args["limit"])
        found = list(cursor)
        return _ids(found) if args.get("sort") else sorted(_ids(found))
    if shape.kind == "count":
        return next(coll.aggregate(count_pipeline(args["query"])), {"n": 0})["n"]
    if shape.kind == "update_one":
        coll.update_one(args["query"], args["update"], upsert=shape.upsert)
    elif shape.kind == "delete_many":
        coll.delete_many(args["query"])
    return _state(coll.find())


def run_reference(docs: dict[str, list[Doc]], shape: Shape, args: dict[str, Any]) -> Any:
    coll = [dict(d) for d in docs[shape.collection]]
    if shape.kind == "find":
        found = reference_find(coll, args["query"], args.get("sort"), args.get("limit"))
        return _ids(found) if args.get("sort") else sorted(_ids(found))
    if shape.kind == "count":
        return len(reference_find(coll, args["query"]))
    if shape.kind == "update_one":
        reference_update_one(coll, args["query"], args["update"], upsert=shape.upsert)
    elif shape.kind == "delete_many":
        coll = [d for d in coll if not reference_match(d, args["query"])]
    return _state(coll)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=datasets(), data=st.data())
def test_server_answers_like_the_reference(contract_db: Database, shape: Shape, docs: dict[str, list[Doc]],
                                           data: st.DataObject) -> None:
    args = shape.build(params_for(data, docs))
    _load(contract_db, docs)
    assert run_on_server(contract_db, shape, args) == run_reference(docs, shape, args)


def test_ordered_client_bulk_write_stops_at_the_first_error(contract_db: Database) -> None:
    """A fresh create sends its entries, then its commit point, in one ordered request: a failing step must
    stop everything after it, and a successful request must apply every step in order."""
    client = contract_db.client
    if client.admin.command("hello").get("maxWireVersion", 0) < 25:
        pytest.skip("server has no client-level bulkWrite; the store sends one request per step")
    current, index = (f"{contract_db.name}.{COLLECTIONS[c]}" for c in ("current", "index"))
    _load(contract_db, {"current": [{"_id": "Patient/a", "vid": 1, "live": "Patient"}], "history": [], "index": []})
    ops = [InsertOne(namespace=current, document={"_id": "Patient/a", "vid": 1}),
           UpdateOne(namespace=current, filter={"_id": "Patient/a"}, update={"$unset": {"live": ""}}),
           UpdateOne(namespace=index, filter={"_id": "e"}, update={"$set": {"r": "x", "k0": "y"}}, upsert=True)]
    with pytest.raises(ClientBulkWriteException) as failure:
        client.bulk_write(ops, ordered=True)
    assert failure.value.write_errors[0]["idx"] == 0
    assert contract_db[COLLECTIONS["current"]].find_one({"_id": "Patient/a"})["live"] == "Patient"
    assert contract_db[COLLECTIONS["index"]].count_documents({}) == 0
    ops[0] = InsertOne(namespace=current, document={"_id": "Patient/b", "vid": 1, "json": b"\x00binary"})
    result = client.bulk_write([*ops, DeleteMany(namespace=index, filter={"_id": {"$in": ["e"]}})], ordered=True,
                               verbose_results=True)
    assert result.update_results[1].matched_count == 1
    assert "live" not in contract_db[COLLECTIONS["current"]].find_one({"_id": "Patient/a"})
    assert contract_db[COLLECTIONS["current"]].find_one({"_id": "Patient/b"})["json"] == b"\x00binary"
    assert contract_db[COLLECTIONS["index"]].count_documents({}) == 0
