"""Run every store shape against the configured server and against the plain-Python reference."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import DeleteMany, InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import ClientBulkWriteException

from tests.store.contract import (
    SHAPES,
    Doc,
    Shape,
    reference_find,
    reference_match,
    reference_replace_upsert,
    reference_update,
)

KEYS = ["Patient/a", "Patient/b", "Patient/c", "Observation/a", "Observation/x.1", "Encounter/z-9"]
SEARCH_KEYS = ["Patient|identifier|v|1", "Patient|identifier|sv|urn:a|1", "Observation|identifier|s|urn:a", "k|x"]
COLLECTIONS = {"versions": "contract_versions", "index": "contract_index"}


@pytest.fixture(scope="module")
def contract_db(mongodb_uri: str) -> Iterator[Database]:
    client: MongoClient = MongoClient(mongodb_uri)
    db = client[f"contract_{uuid.uuid4().hex[:8]}"]
    for name, fields in (("contract_versions", ("key", "type", "ts", "live", "pending")),
                         ("contract_index", ("k", "r"))):
        for field in fields:  # the same single-field indexes as the real schema
            db[name].create_index(field)
    yield db
    client.drop_database(db.name)
    client.close()


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, list[Doc]]:
    versions: list[Doc] = []
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=6, unique=True)):
        rtype, rid = key.split("/")
        count = draw(st.integers(1, 4))
        deleted_last = draw(st.booleans())
        for vid in range(1, count + 1):
            doc: Doc = {"_id": f"{key}/{vid}", "key": key, "type": rtype, "rid": rid, "vid": vid,
                        "ts": draw(st.integers(0, 12)), "method": "PUT", "deleted": vid == count and deleted_last}
            if vid == count and not deleted_last:
                doc["live"] = rtype
            if draw(st.integers(0, 5)) == 0:
                doc["pending"] = True
            versions.append(doc)
    index: list[Doc] = []
    for i, (r, k) in enumerate(draw(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(SEARCH_KEYS)),
                                            max_size=10, unique=True))):
        index.append({"_id": f"e{i}", "r": r, "k": k})
    return {"versions": versions, "index": index}


class Params(dict[str, Any]):
    """What a shape's ``build`` reads: values picked from the data set (or outside it)."""


def params_for(data: st.DataObject, docs: dict[str, list[Doc]]) -> Params:
    def pick(field: str, default: Any) -> Any:
        pool = sorted({d[field] for coll in docs.values() for d in coll if field in d}, key=repr) or [default]
        return data.draw(st.sampled_from([*pool, default]))

    entry_ids = [d["_id"] for d in docs["index"]]
    return Params(
        pick=pick,
        keys=data.draw(st.lists(st.sampled_from(KEYS), max_size=4)),
        search_keys=data.draw(st.lists(st.sampled_from(SEARCH_KEYS), max_size=3)),
        limit=data.draw(st.integers(1, 6)),
        ts=data.draw(st.integers(0, 12)),
        vid=data.draw(st.integers(1, 5)),
        entry_ids=data.draw(st.lists(st.sampled_from([*entry_ids, "absent"]), max_size=4)),
        new_entry={"_id": data.draw(st.sampled_from([*entry_ids, "new"])), "r": "Patient/a", "k": "k|new"},
    )


def _load(db: Database, docs: dict[str, list[Doc]]) -> None:
    for logical, name in COLLECTIONS.items():
        db[name].delete_many({})
        if docs[logical]:
            db[name].insert_many([dict(d) for d in docs[logical]])


def _ids(docs: list[Doc]) -> list[Any]:
    return [d["_id"] for d in docs]


def run_on_server(db: Database, shape: Shape, args: dict[str, Any]) -> Any:
    coll = db[COLLECTIONS[shape.collection]]
    if shape.kind == "find":
        cursor = coll.find(args["query"], args.get("projection"))
        if args.get("sort"):
            cursor = cursor.sort(args["sort"])
        if args.get("limit"):
            cursor = cursor.limit(args["limit"])
        found = list(cursor)
        return _ids(found) if args.get("sort") else sorted(_ids(found))
    if shape.kind == "count":
        return coll.count_documents(args["query"])
    if shape.kind == "update_many":
        coll.update_many(args["query"], args["update"])
    elif shape.kind == "update_one":
        coll.update_one(args["query"], args["update"])
    elif shape.kind == "delete_many":
        coll.delete_many(args["query"])
    elif shape.kind == "replace_upsert":
        coll.replace_one({"_id": args["doc_id"]}, args["replacement"], upsert=True)
    return sorted((dict(sorted(d.items())) for d in coll.find()), key=lambda d: str(d["_id"]))


def run_reference(docs: dict[str, list[Doc]], shape: Shape, args: dict[str, Any]) -> Any:
    coll = [dict(d) for d in docs[shape.collection]]
    if shape.kind == "find":
        found = reference_find(coll, args["query"], args.get("sort"), args.get("limit"))
        return _ids(found) if args.get("sort") else sorted(_ids(found))
    if shape.kind == "count":
        return len(reference_find(coll, args["query"]))
    if shape.kind in ("update_many", "update_one"):
        reference_update(coll, args["query"], args["update"], many=shape.kind == "update_many")
    elif shape.kind == "delete_many":
        coll = [d for d in coll if not reference_match(d, args["query"])]
    elif shape.kind == "replace_upsert":
        reference_replace_upsert(coll, args["doc_id"], args["replacement"])
    return sorted((dict(sorted(d.items())) for d in coll), key=lambda d: str(d["_id"]))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=datasets(), data=st.data())
def test_server_answers_like_the_reference(contract_db: Database, shape: Shape, docs: dict[str, list[Doc]],
                                           data: st.DataObject) -> None:
    args = shape.build(params_for(data, docs))
    _load(contract_db, docs)
    assert run_on_server(contract_db, shape, args) == run_reference(docs, shape, args)


def test_ordered_client_bulk_write_stops_at_a_taken_version(contract_db: Database) -> None:
    """The write path's commit point: a duplicate version _id at op 0 must leave everything untouched."""
    client = contract_db.client
    if client.admin.command("hello").get("maxWireVersion", 0) < 25:
        pytest.skip("server has no client-level bulkWrite; the store uses sequential writes")
    versions, index = (f"{contract_db.name}.{COLLECTIONS[c]}" for c in ("versions", "index"))
    _load(contract_db, {"versions": [{"_id": "Patient/a/1", "key": "Patient/a", "live": "Patient"}], "index": []})
    ops = [InsertOne(namespace=versions, document={"_id": "Patient/a/1", "key": "Patient/a"}),
           UpdateOne(namespace=versions, filter={"_id": "Patient/a/1"}, update={"$unset": {"live": ""}}),
           ReplaceOne(namespace=index, filter={"_id": "e"}, replacement={"_id": "e", "r": "x", "k": "y"}, upsert=True)]
    with pytest.raises(ClientBulkWriteException) as failure:
        client.bulk_write(ops, ordered=True)
    assert failure.value.write_errors[0]["idx"] == 0
    assert contract_db[COLLECTIONS["versions"]].find_one({"_id": "Patient/a/1"})["live"] == "Patient"
    assert contract_db[COLLECTIONS["index"]].count_documents({}) == 0
    # and a successful one applies every operation, in order
    ops[0] = InsertOne(namespace=versions, document={"_id": "Patient/a/2", "key": "Patient/a", "live": "Patient"})
    client.bulk_write([*ops, DeleteMany(namespace=index, filter={"_id": {"$in": ["e"]}})], ordered=True)
    assert "live" not in contract_db[COLLECTIONS["versions"]].find_one({"_id": "Patient/a/1"})
    assert contract_db[COLLECTIONS["index"]].count_documents({}) == 0
