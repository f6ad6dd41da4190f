"""Every request the store sends during a realistic workload must be a shape the contract tests.

A command listener records the filters, sorts and updates of every command the hub's MongoDB client
sends while the API is exercised (all interactions, paging, conditional writes, repair). A shape the
contract does not cover fails here, so a new query cannot reach production untested against the server.
So does a command the recorder does not know (``findAndModify``, ``distinct``, an aggregation other than
the count): it could carry a query the recorder would otherwise let through unseen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient, monitoring
from pymongo.collection import Collection

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from fhir_hub.store.count import count_pipeline
from fhir_hub.store.schema import (
    AUDIT,
    BACKEND_CLIENTS,
    CLAIMS,
    CONSENT_EPOCH,
    CONSENT_SUBJECTS,
    HISTORY,
    LINK_DECISIONS,
    MATCH_BLOCKS,
    META,
    PATIENT_LINKS,
    RESOURCES,
    SEARCH_INDEX,
    USED_ASSERTIONS,
)
from tests.conftest import auth, token_for
from tests.consent.test_consent_reads import consent, give
from tests.store.contract import SHAPES, shape

_COLLECTIONS = {RESOURCES: "current", HISTORY: "history", SEARCH_INDEX: "index", AUDIT: "audit", META: "meta",
                CLAIMS: "claims", MATCH_BLOCKS: "blocks", PATIENT_LINKS: "links", LINK_DECISIONS: "decisions",
                CONSENT_SUBJECTS: "subjects", USED_ASSERTIONS: "assertions", BACKEND_CLIENTS: "clients",
                CONSENT_EPOCH: "epoch"}
_DUMMY = {"pick": lambda field, default: default, "keys": ["Patient/a"], "claim_keys": ["Patient?a"],
          "prefix": "k", "limit": 3, "ts": 5, "expiry": 5.0,
          "audit_patients": ["a"], "audit_ids": ["e"], "audit_withheld": ["w"],
          "block_ids": ["b"], "block_key": "cccd:1", "link_ids": ["Patient/a"], "masters": ["Patient/m"],
          "subject_ids": ["Consent/c"], "patients": ["a"],
          "contains": "n", "low_key": "a", "high_key": "b", "scope": "a",
          "vid": 2, "entry_ids": ["x"],
          "new_version": {"_id": "P/a", "key": "P/a", "type": "P", "rid": "a", "vid": 2, "ts": 5, "method": "PUT",
                          "deleted": False, "json": b"{}", "live": "P", "w": "t", "src": "s", "pc": ["a"],
                          "af": b"{}"}}


def contract_signatures() -> set[tuple[Any, ...]]:
    signatures = set()
    for s in SHAPES:
        args = s.build(dict(_DUMMY))
        sort = tuple((f, d) for f, d in args.get("sort", []))
        signatures.add((s.collection, s.kind, shape(args["query"]), shape(args.get("update", {})), sort, s.upsert))
    return signatures


# Commands that carry no filter, sort or update to check: inserts (every document is a new one), cursor and
# session housekeeping, the end of a transaction, start-up (capabilities, indexes). Every other command the
# recorder does not read below fails the suite, named, rather than passing unseen.
_WITHOUT_SHAPE = frozenset({"insert", "getMore", "killCursors", "endSessions", "commitTransaction",
                            "abortTransaction", "hello", "buildInfo", "createIndexes", "listIndexes"})
_WITH_SHAPE = frozenset({"find", "aggregate", "update", "delete", "bulkWrite"})


class Recorder(monitoring.CommandListener):
    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.active = True
        self.seen: set[tuple[Any, ...]] = set()
        self.unknown: set[str] = set()  # commands (or parts of one) the recorder cannot read

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Raising here would not fail anything (pymongo logs a listener's errors): what the recorder cannot
        read is kept in ``unknown``, and ``assert_covered`` fails on it."""
        if not self.active:
            return
        cmd = event.command
        name = event.command_name
        if name not in _WITH_SHAPE:
            if name not in _WITHOUT_SHAPE:
                self.unknown.add(name)
            return
        if name == "bulkWrite":
            namespaces = [info["ns"] for info in cmd["nsInfo"]]
            for op in cmd["ops"]:
                kind = next(iter(op))
                ns = namespaces[op[kind]]
                if ns.startswith(self.db_name + "."):
                    self._write(ns.split(".", 1)[1], kind, op)
            return
        if event.database_name != self.db_name:
            return
        coll = cmd.get(name)
        if name == "find":
            sort = tuple((f, d) for f, d in (cmd.get("sort") or {}).items())
            self._add(coll, "find", cmd.get("filter", {}), {}, sort, False)
        elif name == "aggregate":
            match = cmd["pipeline"][0].get("$match", {})
            if list(cmd["pipeline"]) != count_pipeline(match):  # the store aggregates only to count
                self.unknown.add(f"aggregate {[next(iter(stage)) for stage in cmd['pipeline']]}")
                return
            self._add(coll, "count", match, {}, (), False)
        else:
            for op in cmd.get(name + "s", []):
                self._write(coll, name, {"filter": op["q"], "updateMods": op.get("u"), "multi": op.get("multi"),
                                         "upsert": op.get("upsert"), "limit": op.get("limit")})

    def _write(self, coll: str, kind: str, op: dict[str, Any]) -> None:
        if kind == "insert":
            return
        if kind not in ("update", "delete"):
            self.unknown.add(f"bulkWrite {kind}")
            return
        if kind == "delete":
            self._add(coll, "delete_many", op["filter"], {}, (), False)
            return
        self._add(coll, "update_many" if op.get("multi") else "update_one", op["filter"], op.get("updateMods") or {},
                  (), bool(op.get("upsert")))

    def _add(self, coll: str, kind: str, query: Any, update: Any, sort: tuple[Any, ...], upsert: bool) -> None:
        self.seen.add((_COLLECTIONS.get(coll, coll), kind, shape(dict(query)), shape(dict(update)), sort, upsert))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def assert_covered(self) -> None:
        """Every command was one the recorder reads, and every shape it read is one the contract tests."""
        assert not self.unknown, ("store commands the recorder does not know (read their shape here and add it "
                                  "to the contract): " + ", ".join(sorted(self.unknown)))
        uncovered = sorted(map(repr, self.seen - contract_signatures()))
        assert not uncovered, "store requests with no contract test:\n" + "\n".join(uncovered)


def _workload(client: TestClient) -> None:
    fhir = {"Content-Type": "application/fhir+json"}
    ident = {"system": "urn:test", "value": "42"}
    created = client.post("/Patient", json={"resourceType": "Patient", "identifier": [ident]}, headers=fhir).json()
    pid = created["id"]
    client.get(f"/Patient/{pid}")
    client.put(f"/Patient/{pid}", json={**created, "identifier": [{"value": "43"}]}, headers=fhir)
    client.put(f"/Patient/{pid}", json=created, headers={**fhir, "If-Match": 'W/"2"'})
    client.get(f"/Patient/{pid}/_history/1")
    for url in (f"/Patient/{pid}/_history?_count=1", "/Patient/_history?_count=1", "/_history?_count=1"):
        page = client.get(url).json()
        next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
        client.get(next_url)
        client.get(url + "&_since=2020-01-01")
        client.get(next_url + "&_since=2020-01-01")
    client.get("/Patient?identifier=urn:test|42")
    client.get("/Patient?_id=" + pid)
    client.post("/Patient", json={"resourceType": "Patient"}, headers=fhir)
    page = client.get("/Patient?_count=1").json()
    client.get(next(link["url"] for link in page["link"] if link["relation"] == "next"))
    client.post("/Patient", json={"resourceType": "Patient"}, headers={**fhir, "If-None-Exist": "identifier=42"})
    client.get("/Patient?identifier=urn:test|")
    client.get("/Patient?identifier=|42")
    client.put("/Patient?identifier=urn:test|42", json={"resourceType": "Patient", "identifier": [ident]}, headers=fhir)
    client.delete("/Patient?identifier=urn:test|42")
    client.delete(f"/Patient/{pid}")
    client.put(f"/Patient/{pid}", json=created, headers=fhir)  # resurrect
    client.delete(f"/Patient/{pid}")
    client.put("/Patient/client-id", json={"resourceType": "Patient", "id": "client-id"}, headers=fhir)
    client.put("/Patient/client-id-2", json={"resourceType": "Patient", "id": "client-id-2", "identifier": [ident]},
               headers=fhir)
    client.get(f"/Patient/{pid}/_history/2")
    resident = auth(token_for(client.app.state.hub.settings, "resident", patient="client-id"))  # type: ignore[attr-defined]
    client.put("/Patient/client-id", json={"resourceType": "Patient", "id": "client-id", "active": True}, headers=fhir)
    for url in ("/Patient/_history?_count=1", "/_history?_count=1", "/Patient/client-id/_history/1"):
        page = client.get(url, headers=resident).json()
        links = page.get("link", []) if page.get("resourceType") == "Bundle" else []  # a vread's are Patient.link
        following = [link["url"] for link in links if link["relation"] == "next"]
        for next_url in following:
            client.get(next_url, headers=resident)
            client.get(next_url + "&_since=2020-01-01", headers=resident)


def _search_workload(client: TestClient) -> None:
    fhir = {"Content-Type": "application/fhir+json"}
    client.put("/Patient/sp", json={"resourceType": "Patient", "id": "sp", "name": [{"family": "Nguyễn"}],
                                    "birthDate": "1960-04-13"}, headers=fhir)
    client.post("/Observation", json={"resourceType": "Observation", "status": "final",
                                      "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                                      "subject": {"reference": "Patient/sp"},
                                      "effectivePeriod": {"start": "2020-01-01", "end": "2021-01-01"},
                                      "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org",
                                                        "code": "mm[Hg]"}}, headers=fhir)
    for query in ("name=ngu", "name:exact=Nguyễn", "name:contains=uye", "birthdate=ge1960", "birthdate=lt1961-01",
                  "birthdate=eq1960", "birthdate=ne1960", "birthdate=sa1950", "gender:missing=true",
                  "name=ngu&birthdate=1960", "_lastUpdated=ge2020-01-01", "_lastUpdated=le2100",
                  "_lastUpdated=eq2020", "_lastUpdated=ne2020", "_sort=-birthdate,name", "_sort=_lastUpdated",
                  "_has:Observation:subject:code=8480-6", "_revinclude=Observation:subject",
                  "_summary=count", "_elements=name", "_total=none"):
        client.get(f"/Patient?{query}")
    for query in ("code=http://loinc.org|8480-6", "code=8480-6&subject=Patient/sp", "code:not=1",
                  "date=gt2020-06", "date=ge2019", "date=le2020", "value-quantity=gt100|http://unitsofmeasure.org|mm[Hg]",
                  "subject:Patient.name=nguyen", "subject:Patient.birthdate=1960&code=8480-6", "patient=sp",
                  "code-value-quantity=http://loinc.org|8480-6$gt100", "_include=Observation:subject",
                  "_include=Observation:subject&_include:iterate=Patient:general-practitioner", "status=final",
                  "_profile:below=http://hl7.org", "code=http://loinc.org|"):
        client.get(f"/Observation?{query}")


def _audit_workload(client: TestClient, settings: Settings) -> None:
    """The trail read by its administrator (the operator), then by a resident."""
    client.portal.call(client.app.state.hub.audit.flush)  # type: ignore[attr-defined]
    admin = auth(token_for(settings, facility=None))
    page = client.get("/AuditEvent?_count=1", headers=admin).json()
    event_id = page["entry"][0]["resource"]["id"]
    client.get(next(link["url"] for link in page["link"] if link["relation"] == "next"), headers=admin)
    client.get(f"/AuditEvent/{event_id}", headers=admin)
    client.get(f"/AuditEvent/{event_id}/_history/1", headers=admin)
    client.get(f"/AuditEvent?_id={event_id}&patient=Patient/x", headers=admin)
    client.get(f"/AuditEvent?_id={event_id}", headers=admin)
    history = client.get("/AuditEvent/_history?_count=1&_since=2020-01-01", headers=admin).json()
    client.get(next(link["url"] for link in history["link"] if link["relation"] == "next"), headers=admin)
    client.get("/AuditEvent/_history?_count=1", headers=admin)
    resident = auth(token_for(settings, "resident", patient="x"))
    client.get("/AuditEvent?_count=1", headers=resident)
    client.get("/AuditEvent/_history?_count=1", headers=resident)
    hub = client.app.state.hub  # type: ignore[attr-defined]
    client.portal.call(hub.store.audit_log.stored_ids, [event_id])
    decide = hub.access
    hub.access = lambda caller: decide(caller).withholding({f"AuditEvent/{event_id}"})
    client.get("/AuditEvent?_count=1", headers=admin)  # what a decision withholds: out of page and count
    client.get("/AuditEvent/_history?_count=1", headers=admin)
    _emergency_workload(client, settings)
    hub.access = decide


def _emergency_workload(client: TestClient, settings: Settings) -> None:
    """Break the glass, then page through a resident's access log and a facility's emergency accesses
    (run with and without an AuditEvent withheld)."""
    glass = {**auth(token_for(settings, "clinician", facility="79002", purpose="ETREAT")), "X-Emergency-Reason": "x"}
    pid = client.get("/Patient?_count=1", headers=glass).json()["entry"][0]["resource"]["id"]
    client.portal.call(client.app.state.hub.audit.flush)  # type: ignore[attr-defined]
    for url, headers in (("/Patient/$access-log?_count=1", auth(token_for(settings, "resident", patient=pid))),
                         ("/AuditEvent/$emergency-access?_count=1", auth(token_for(settings, facility="79002"))),
                         ("/AuditEvent/$emergency-access?_count=1", auth(token_for(settings, facility=None)))):
        for _ in range(3):  # the emergency pages, and an access log's first page of the others
            page = client.get(url, headers=headers).json()
            url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), "")
            if not url:
                break


def _linking_workload(client: TestClient) -> None:
    """Two records in the review band, settled; a merge, the person's links, the unmerge (by the operator, who
    reads every facility's Patients and their masters)."""
    fhir = {"Content-Type": "application/fhir+json"}
    operator = auth(token_for(client.app.state.hub.settings, facility=None))  # type: ignore[attr-defined]

    def patient(given: list[str]) -> str:
        body = {"resourceType": "Patient", "name": [{"family": "Võ", "given": given}], "birthDate": "1985-03-04",
                "gender": "female"}
        return str(client.post("/Patient", json=body, headers=fhir).json()["id"])

    def operation(name: str, **refs: str) -> dict[str, Any]:
        parameter: list[dict[str, Any]] = [{"name": k.replace("_", "-"), "valueReference": {"reference": v}}
                                           for k, v in refs.items()]
        if name == "review":
            parameter.append({"name": "decision", "valueCode": "different"})
        answer = client.post(f"/Patient/${name}", json={"resourceType": "Parameters", "parameter": parameter},
                             headers={**fhir, **operator})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    first, second = patient(["Thị", "Hồng", "Nhung"]), patient(["Thị", "Nhung"])
    client.get("/Patient/$review-list", headers=operator)
    operation("review", record=f"Patient/{second}", candidate=f"Patient/{first}")
    kept = operation("merge", source_patient=f"Patient/{second}", target_patient=f"Patient/{first}")
    links = client.get(f"/Patient/{first}/$links", headers=operator).json()
    merged = next(p["valueReference"]["reference"] for p in links["parameter"] if p["name"] == "merged")
    assert kept["parameter"][1]["resource"]["id"] != merged
    operation("unmerge", patient=merged)


def _consent_workload(client: TestClient, settings: Settings) -> None:
    """A resident's consent, then another facility's reads and searches judged by it."""
    fhir = {"Content-Type": "application/fhir+json"}
    client.put("/Patient/cw", json={"resourceType": "Patient", "id": "cw"}, headers=fhir)
    client.post("/Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                      "subject": {"reference": "Patient/cw"}}, headers=fhir)
    body = {**consent(), "patient": {"reference": "Patient/cw"}}
    give(client, auth(token_for(settings, "resident", patient="cw")), body)
    other = auth(token_for(settings, facility="79002"))
    client.get("/Observation?_count=5", headers=other)
    client.get("/Patient/cw", headers=other)
    client.get("/Observation/_history?_count=2", headers=other)


def _token_workload(client: TestClient) -> None:
    """SMART Backend Services' store requests: a client registered as data, read, removed; a jti recorded
    twice (the second is refused by the unique _id) and the sweep of expired ones."""
    store = client.app.state.hub.store  # type: ignore[attr-defined]
    client.portal.call(store.backend_clients.put, {"client_id": "c1", "scope": "system/*.rs", "jwks": {"keys": []}})
    client.portal.call(store.backend_clients.get, "c1")
    client.portal.call(store.backend_clients.remove, "c1")
    for _ in range(2):
        client.portal.call(store.used_assertions.first_use, "c1", "j1", 4e9)


def test_every_store_request_is_covered_by_the_contract(settings: Settings) -> None:
    recorder = Recorder(settings.db_name)
    monitoring.register(recorder)  # applies to clients created from now on
    try:
        app = create_app(settings)
        with TestClient(app, headers=auth(token_for(settings))) as client:
            _workload(client)
            hub = app.state.hub
            _search_workload(client)
            _audit_workload(client, settings)
            _linking_workload(client)
            _consent_workload(client, settings)
            _token_workload(client)
            client.portal.call(hub.store.reconcile, "Patient", "any")  # repair paths
            client.portal.call(hub.store.match_candidates, ["cccd:079085001234", "phone:0903123456"])
            client.portal.call(hub.store.reconcile_pending)
            hub.store.capabilities = type(hub.store.capabilities)(hub.store.capabilities.engine, False, False, False)
            client.post("/Patient", json={"resourceType": "Patient", "identifier": [{"value": "9"}]})  # fallback writes
            created = client.post("/Patient", json={"resourceType": "Patient"}).json()
            client.put(f"/Patient/{created['id']}", json={**created, "identifier": [{"value": "8"}]})
    finally:
        recorder.active = False
    recorder.assert_covered()
    assert len(recorder.seen) >= 10  # the recorder did see the workload


def _recorded(settings: Settings, send: Callable[[Collection], object]) -> Recorder:
    """What the recorder makes of requests sent to the hub's ``resources`` collection."""
    recorder = Recorder(settings.db_name)
    with MongoClient(settings.mongodb_uri, event_listeners=[recorder]) as client:
        send(client[settings.db_name][RESOURCES])
    return recorder


def test_the_recorder_passes_a_request_the_contract_covers(settings: Settings) -> None:
    recorder = _recorded(settings, lambda resources: resources.find_one({"_id": "Patient/a"}))
    recorder.assert_covered()
    assert recorder.seen  # it was read, not skipped


@pytest.mark.parametrize(("send", "named"), [
    (lambda resources: resources.find_one_and_update({"_id": "Patient/a"}, {"$set": {"vid": 2}}), "findAndModify"),
    (lambda resources: resources.distinct("type"), "distinct"),
    (lambda resources: resources.count_documents({"live": "Patient"}), "aggregate ['$match', '$group']"),
], ids=["findAndModify", "distinct", "count_documents"])
def test_the_recorder_fails_on_a_command_it_does_not_know(settings: Settings, send: Callable[[Collection], object],
                                                          named: str) -> None:
    recorder = _recorded(settings, send)
    with pytest.raises(AssertionError, match=re.escape(named)):
        recorder.assert_covered()
