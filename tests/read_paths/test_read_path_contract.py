"""The read-path contract: a resource the caller's access decision hides is invisible on every read path.

One database, two apps on it: ``open_`` with the usual decision, ``hidden`` with the same caller's decision
withholding one chosen resource (``Hub.access`` replaced, as a Consent denying that resource will). On every
path the hidden resource must not be returned, counted, included or matched, and nothing may tell it exists:
a direct read answers exactly as a never-created id does, a search's total is the open total minus one, and
a conditional interaction or Bundle entry aimed at it answers as if its criteria matched nothing.

Every read path added later joins ``PATHS`` (or gets its own test below) the day it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_hub.auth.caller import Caller
from fhir_hub.config import Settings
from fhir_hub.linking.elements import is_master_key, master_of
from fhir_hub.main import create_app
from fhir_hub.priority.record import refresh
from fhir_hub.queue.worker import Worker
from fhir_hub.services.pages import decode_page
from tests.conftest import as_, audit_held
from tests.read_paths import person_paths
from tests.read_paths.person_paths import PERSON_PATHS, PersonWorld, person_world

FHIR = {"Content-Type": "application/fhir+json"}
HIDDEN_OBS = "obs-hidden-q7"  # unusual ids: a leak shows up as the string anywhere in a response
HIDDEN_CODE = "code-only-hidden-has"
HIDDEN_IDENT = "urn:lab|ident-only-hidden-has"
ABSENT = "obs-never-created"
# P's demographics, so that Patient/$match finds her (and, for the Patient worlds, her hidden records)
P_DEMOGRAPHICS = {"name": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}], "birthDate": "1956-04-12",
                  "gender": "female"}


@dataclass
class World:
    open_: TestClient
    hidden: TestClient
    hidden_key: str  # Type/id of the withheld resource
    ids: dict[str, str]
    kind: str = ""  # which of HIDDEN
    role: str = "system"  # the clients' caller: "system" (facility 79001) or "resident" (P)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)  # other callers' headers, by name


def _seed(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    """Two patients; P has visible Observations V1, V2, V3 (V3 has X as a member), the hidden X (two versions,
    a code and an identifier nobody else has, V1 as a member), a DiagnosticReport with results X and V1, and a
    Provenance for V2. Q's records are touched only here, so Q's audit trail is stable during the tests."""

    def put(rtype: str, rid: str, body: dict[str, Any]) -> None:
        response = client.put(f"/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body},
                              headers={**FHIR, **headers})
        assert response.status_code in (200, 201), response.text

    put("Patient", "pat-p", {**P_DEMOGRAPHICS, "identifier": [{"system": "urn:pid", "value": "p"}]})
    put("Patient", "pat-q", {"name": [{"family": "Trần"}]})

    def obs(code: str, ident: str, **more: Any) -> dict[str, Any]:
        """Laboratory results, so that P's ``$summary`` lists them (its results section)."""
        system, _, value = ident.partition("|")
        laboratory = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
        return {"status": "final", "code": {"coding": [{"system": "urn:code", "code": code}]},
                "category": [{"coding": [laboratory]}],
                "subject": {"reference": "Patient/pat-p"}, "identifier": [{"system": system, "value": value}], **more}

    put("Observation", "obs-v1", obs("code-common", "urn:lab|v1"))
    put("Observation", "obs-v2", obs("code-common", "urn:lab|v2"))
    put("Observation", HIDDEN_OBS, obs(HIDDEN_CODE, HIDDEN_IDENT, hasMember=[{"reference": "Observation/obs-v1"}]))
    put("Observation", HIDDEN_OBS, obs(HIDDEN_CODE, HIDDEN_IDENT, hasMember=[{"reference": "Observation/obs-v1"}],
                                       valueString="second version"))
    put("Observation", "obs-v3", obs("code-common", "urn:lab|v3",
                                     hasMember=[{"reference": f"Observation/{HIDDEN_OBS}"}]))
    put("Observation", "obs-q", {**obs("code-common", "urn:lab|q"), "subject": {"reference": "Patient/pat-q"}})
    put("DiagnosticReport", "dr-1", {"status": "final", "code": {"text": "panel"},
                                     "subject": {"reference": "Patient/pat-p"},
                                     "result": [{"reference": f"Observation/{HIDDEN_OBS}"},
                                                {"reference": "Observation/obs-v1"}]})
    put("Provenance", "prov-v2", {"target": [{"reference": "Observation/obs-v2"}], "recorded": "2026-01-01T00:00:00Z",
                                  "agent": [{"who": {"display": "lab"}}]})
    put("Provenance", "prov-v1", {"target": [{"reference": "Observation/obs-v1"}], "recorded": "2026-01-02T00:00:00Z",
                                  "agent": [{"who": {"display": "lab"}}]})
    for _ in range(3):  # audit events of Q's record
        assert client.get("/Observation/obs-q", headers=headers).status_code == 200
    return {"P": "pat-p", "Q": "pat-q"}


def _audit_event_of(client: TestClient, headers: dict[str, str], patient: str) -> str:
    """The id of one of the patient's AuditEvents, once the trail has flushed."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = client.get("/AuditEvent", params={"patient": patient, "_count": 50}, headers=headers).json()
        if found.get("entry"):
            return str(found["entry"][-1]["resource"]["id"])
        time.sleep(0.05)
    raise AssertionError("the audit trail wrote nothing")


def _settings(mongodb_uri: str, data_dir: Any, db_name: str) -> Settings:
    return Settings(mongodb_uri=mongodb_uri, db_name=db_name, data_dir=data_dir, validation_processes=0,
                    ingest_processes=0)


@dataclass
class Hidden:
    """Which resource a world hides, found once the world is seeded."""

    rtype: str
    pick: Callable[[TestClient, dict[str, str]], str]  # its id, found with the headers of ``picker``
    roles: tuple[str, ...] = ("system", "resident")  # the worlds made with it
    picker: str = "system"  # a name in ``World.tokens``
    scope: str = "patient=Patient/pat-q&"  # for AuditEvents: criteria keeping the compared ones stable


def _emergency_event_of(client: TestClient, headers: dict[str, str], patient: str) -> str:
    """The id of the patient's AuditEvent of the seeded emergency access (flagged with its meta.tag)."""
    found = client.get("/AuditEvent", params={"patient": patient, "_count": 100}, headers=headers).json()
    return next(str(e["resource"]["id"]) for e in found["entry"] if _is_emergency(e["resource"]))


def _emergency_request(client: TestClient, headers: dict[str, str]) -> str:
    """The id of the seeded emergency access's request entry, the one its facility reviews."""
    found = client.get("/AuditEvent/$emergency-access", headers=headers).json()
    (only,) = found["entry"]
    return str(only["resource"]["id"])


HIDDEN = {
    "Observation": Hidden("Observation", lambda _client, _headers: HIDDEN_OBS),
    "Provenance": Hidden("Provenance", lambda _client, _headers: "prov-v2"),
    "AuditEvent": Hidden("AuditEvent", lambda client, headers: _audit_event_of(client, headers, "pat-q"),
                         picker="operator"),
    "Patient": Hidden("Patient", lambda _client, _headers: "pat-p"),  # a facility's record (a source)
    "master": Hidden("Patient", lambda client, headers: _master_of(client, headers, "pat-p")),  # P's golden record
    # issue 17: P's AuditEvent of an emergency access, for P reading her access log; the request's entry
    # of that emergency, for the facility of the clinician who broke the glass and the hub's operator
    "emergency": Hidden("AuditEvent", lambda client, headers: _emergency_event_of(client, headers, "pat-p"),
                        roles=("resident",), picker="operator", scope="patient=Patient/pat-p&"),
    "emergency-request": Hidden("AuditEvent", _emergency_request, roles=("system",), picker="operator", scope=""),
}
EMERGENCY_FACILITY = "79002"  # the facility of the clinician who breaks the glass on P's record while seeding
FLAG = {"system": "https://fhir.hub.hcmc.vn/CodeSystem/audit-flag", "code": "emergency-access"}


def _is_emergency(event: dict[str, Any]) -> bool:
    return any(tag.items() >= FLAG.items() for tag in event.get("meta", {}).get("tag", []))


def _master_of(client: TestClient, headers: dict[str, str], patient: str) -> str:
    linked = master_of(client.get(f"/Patient/{patient}", headers=headers).json())
    assert linked is not None, f"{patient} has no master"
    return linked[0].split("/", 1)[1]


def withholding(decide: Callable[[Caller], Any], key: str) -> Callable[[Caller], Any]:
    """The hub's own decision (consents included) with one more resource withheld."""
    return lambda caller: decide(caller).withholding({key})


@contextlib.contextmanager
def seeded_world(mongodb_uri: str, data_dir: Any, kind: str, role: str) -> Iterator[World]:
    """Seed with one app (closed, so its audit trail is flushed), then serve the same database through an
    open app and a hiding one whose audit trails hold their entries until they close: the tests' own reads
    must not change the AuditEvents they compare."""
    db_name = f"test_readpaths_{uuid.uuid4().hex[:10]}"
    writer_settings = _settings(mongodb_uri, data_dir, db_name)
    system = as_(writer_settings)
    with TestClient(create_app(writer_settings), raise_server_exceptions=False) as seeder:
        ids = _seed(seeder, system)
        # P's priority record (issue 18): the Flags and summary the cohorts and worklists are made of
        seeder.portal.call(refresh, seeder.app.state.hub, "Patient/pat-p")  # type: ignore[attr-defined]
        # another facility's clinician breaks the glass on P's record: flagged AuditEvents for P and 79002
        glass = {**as_(writer_settings, "clinician", facility=EMERGENCY_FACILITY, purpose="ETREAT"),
                 "X-Emergency-Reason": "unconscious, allergies needed"}
        assert seeder.get("/Observation/obs-v1", headers=glass).status_code == 200
    tokens = {"system": system, "operator": as_(writer_settings, facility=None),
              "facility": as_(writer_settings, facility=EMERGENCY_FACILITY)}
    # the audit trail beyond a resident's own entries is the operator's to read (a facility's tokens read none)
    hospital = tokens["operator"] if HIDDEN[kind].rtype == "AuditEvent" else system
    headers = hospital if role == "system" else as_(writer_settings, "resident", patient="pat-p")
    with audit_held(writer_settings) as held, \
            TestClient(create_app(held), raise_server_exceptions=False, headers=headers) as open_, \
            TestClient(create_app(held), raise_server_exceptions=False, headers=headers) as hidden:
        key = f"{HIDDEN[kind].rtype}/{HIDDEN[kind].pick(open_, tokens[HIDDEN[kind].picker])}"
        hidden.app.state.hub.access = withholding(hidden.app.state.hub.access, key)
        yield World(open_, hidden, key, ids, kind, role, tokens)


@pytest.fixture(scope="module", params=[(k, r) for k in HIDDEN for r in HIDDEN[k].roles],
                ids=lambda p: f"{p[0]}-as-{p[1]}")
def world(request: pytest.FixtureRequest, mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    kind, role = request.param
    with seeded_world(mongodb_uri, tmp_path_factory.mktemp("var"), kind, role) as made:
        yield made


# ------------------------------------------------------------------------------------------ checks
def _keys(bundle: dict[str, Any], mode: str | None) -> list[str]:
    found = []
    for item in bundle.get("entry", []):
        resource = item.get("resource")
        if resource is None or (mode is not None and item.get("search", {}).get("mode", "match") != mode):
            continue
        found.append(f"{resource['resourceType']}/{resource['id']}")
    return found


def _tokens(bundle: dict[str, Any]) -> list[Any]:
    """The positions inside the page links' tokens (opaque to clients, but nothing hidden may hide there)."""
    positions = []
    for link in bundle.get("link", []):
        for part in link["url"].split("?", 1)[-1].split("&"):
            if part.startswith("_page="):
                positions.append(decode_page(part.removeprefix("_page=")))
    return positions


def assert_unseen(text: str, key: str) -> None:
    """Nothing names the resource, except a reference to it that a visible resource's author wrote (obs-v3's
    member, the report's result): rewriting other resources' content is redaction, the consent issue's."""
    rid = key.split("/", 1)[1]
    text = text.replace(f'"reference":"{key}"', "")
    assert rid not in text, f"{key} shows through: {text[max(0, text.find(rid) - 300):text.find(rid) + 100]}"


def assert_listing_without(open_: Any, hidden: Any, key: str, *, counted: int, exact: bool = True) -> None:
    """A searchset or history Bundle: the hidden world's is the open world's without the hidden resource
    (not matched, not counted, not included), and nothing in it names the resource but the client's own
    query (the self link). ``counted``: the open world counts the resource in this Bundle's total.
    ``exact`` False for searches that reach the resource through another one (chains, ``_has``): the
    hidden world's results are then a subset, whatever the open world's matched through it."""
    assert open_.status_code == hidden.status_code == 200, (open_.text[:300], hidden.text[:300])
    seen, shown = open_.json(), hidden.json()
    assert_unseen(orjson.dumps({**shown, "link": [link for link in shown.get("link", [])
                                                  if link["relation"] != "self"]}).decode(), key)
    assert_unseen(orjson.dumps(_tokens(shown)).decode(), key)
    matched = _keys(seen, "match")
    if exact:
        assert _keys(shown, "match") == [k for k in matched if k != key]
    else:
        assert set(_keys(shown, "match")) <= set(matched) - {key}
    assert set(_keys(shown, "include")) <= set(_keys(seen, "include")) - {key}
    if "total" in seen and exact:
        assert shown.get("total") == seen["total"] - counted, (seen.get("total"), shown.get("total"))


def _all_pages(client: TestClient, url: str) -> tuple[list[str], list[Any], str]:
    keys: list[str] = []
    positions: list[Any] = []
    texts = ""
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        keys += _keys(body, "match")
        positions += _tokens(body)
        texts += response.text
        url = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), "")
    return keys, positions, texts


def _same_as_absent(client: TestClient, key: str, template: str, headers: dict[str, str] | None = None, *,
                    method: str = "GET") -> None:
    """A read of the hidden resource answers exactly as a read of an id that was never created."""
    rtype, rid = key.split("/", 1)
    hidden = client.request(method, template.format(rtype=rtype, rid=rid), headers=headers)
    absent = client.request(method, template.format(rtype=rtype, rid=ABSENT), headers=headers)
    assert hidden.status_code == absent.status_code == 404, (hidden.text, absent.text)
    assert hidden.text.replace(rid, ABSENT) == absent.text
    assert {k: v for k, v in hidden.headers.items() if k not in ("content-length", "date", "x-request-id")} == \
        {k: v for k, v in absent.headers.items() if k not in ("content-length", "date", "x-request-id")}


# ------------------------------------------------------------------------------- the read paths
Path = Callable[[World], None]


def read(w: World) -> None:
    _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}")


def read_head(w: World) -> None:
    """HEAD runs as the GET (issue 21): its status and headers tell no more than the GET's."""
    _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}", method="HEAD")
    _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/_history/1", method="HEAD")


def read_subset(w: World) -> None:
    """``_elements`` and ``_summary`` on read and vread (issue 21) answer a hidden resource as an absent one."""
    for template in ("/{rtype}/{rid}?_elements=id", "/{rtype}/{rid}?_summary=true",
                     "/{rtype}/{rid}/_history/1?_elements=id"):
        _same_as_absent(w.hidden, w.hidden_key, template)


def access_check(w: World) -> None:
    """The operator asking why someone may read the hidden resource learns nothing it may not see: 404 as for
    an id never created (the world's own callers are refused alike, they are not the operator)."""
    operator = as_(w.hidden.app.state.hub.settings, facility=None)  # type: ignore[attr-defined]
    _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/$access-check?facility=79002", operator)
    assert w.open_.get(f"/{w.hidden_key}/$access-check", headers=operator).status_code == 200


def validate_delete(w: World) -> None:
    """``$validate`` with ``mode=delete`` (issue 20) asks whether the instance exists, through the reader: for
    the hidden resource it answers exactly as for an id never created (a ``not-found`` issue, or the same
    refusal where the caller may not update the type); the open world's caller is told it exists exactly when
    a read shows it to them."""
    rtype, rid = w.hidden_key.split("/", 1)
    hidden = w.hidden.post(f"/{rtype}/{rid}/$validate?mode=delete")
    absent = w.hidden.post(f"/{rtype}/{ABSENT}/$validate?mode=delete")
    assert hidden.status_code == absent.status_code, (hidden.text, absent.text)
    assert hidden.text.replace(rid, ABSENT) == absent.text
    seen = w.open_.post(f"/{rtype}/{rid}/$validate?mode=delete")
    assert seen.status_code == hidden.status_code
    if hidden.status_code == 200:
        assert [i["code"] for i in hidden.json()["issue"]] == ["not-found"]
        readable = w.open_.get(f"/{rtype}/{rid}").status_code == 200
        assert [i["code"] for i in seen.json()["issue"]] == ["informational" if readable else "not-found"]


def risk(w: World) -> None:
    """``Patient/{id}/$risk`` (issue 18) reads the Patient and the person's records through the reader: a
    hidden Patient record or master answers as one never created; otherwise the hidden resource changes
    nothing of P's answer and is never named in it."""
    if w.hidden_key.startswith("Patient/"):
        _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/$risk")
        return
    seen, shown = w.open_.get("/Patient/pat-p/$risk"), w.hidden.get("/Patient/pat-p/$risk")
    assert seen.status_code == shown.status_code
    if shown.status_code == 200:
        assert shown.json() == seen.json()
    assert_unseen(shown.text, w.hidden_key)


def cohorts(w: World) -> None:
    """``Group/$risk-cohort`` and ``Patient/$priority-worklist`` (issue 18) are assembled per request from the
    Flags, Patients and Encounters the reader lets through (tests/api/test_cohorts.py: consent decides
    membership and scores): P (over 60) is a member wherever her master is visible; a hidden Patient record
    or master is never named, and any other hidden resource changes nothing."""
    for url in ("/Group/$risk-cohort?group=age-60-plus", "/Patient/$priority-worklist?ward=26734"):
        seen, shown = w.open_.get(url), w.hidden.get(url)
        assert seen.status_code == shown.status_code == 200, shown.text
        assert_unseen(shown.text, w.hidden_key)
        if not w.hidden_key.startswith("Patient/"):
            assert {k: v for k, v in shown.json().items() if k not in ("id", "meta")} == {
                k: v for k, v in seen.json().items() if k not in ("id", "meta")}
    if w.role == "resident":  # her own priority record: she is in the cohort unless her person is hidden
        members = w.open_.get("/Group/$risk-cohort?group=age-60-plus").json()["quantity"]
        assert members == 1


def vread(w: World) -> None:
    _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/_history/1")
    # a version the store lacks is named as such for a visible resource (issue 21), never for a hidden one
    _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/_history/99")


def instance_history(w: World) -> None:
    _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/_history")


def _both(w: World, url: str, method: str = "GET", *, exact: bool = True, counted: int | None = None,
          **kwargs: Any) -> None:
    """The same request in both worlds. ``counted``: how many times the open world counts the resource in
    the total (by default: as often as it is among the open world's matches, once in a search, once per
    version in a history)."""
    seen = w.open_.request(method, url, **kwargs)
    if counted is None:
        counted = _keys(seen.json(), "match").count(w.hidden_key) if seen.status_code == 200 else 0
    assert_listing_without(seen, w.hidden.request(method, url, **kwargs), w.hidden_key, counted=counted,
                           exact=exact)


def _type(w: World) -> str:
    return w.hidden_key.split("/", 1)[0]


def _scope(w: World) -> str:
    """Criteria that keep the AuditEvents compared to stable ones (Q's record's, unless the world says)."""
    return HIDDEN[w.kind].scope if _type(w) == "AuditEvent" else ""


def type_history(w: World) -> None:
    _both(w, f"/{_type(w)}/_history?_count=100") if _type(w) != "AuditEvent" else None


def system_history(w: World) -> None:
    if _type(w) != "AuditEvent":  # AuditEvents are not in system history
        _both(w, "/_history?_count=500")


def search_get(w: World) -> None:
    _both(w, f"/{_type(w)}?{_scope(w)}_count=100")


def search_post(w: World) -> None:
    _both(w, f"/{_type(w)}/_search", "POST", content=f"{_scope(w)}_count=100",
          headers={"Content-Type": "application/x-www-form-urlencoded"})


def compartment_search(w: World) -> None:
    """``GET /Patient/{id}/{type}`` (and its ``_search`` form) for P's compartment and her golden record's."""
    _by_compartment(w, lambda patient: f"/Patient/{patient}/{_type(w)}", post=True)


def everything(w: World) -> None:
    """``Patient/{id}/$everything``: the hidden resource is neither a match nor an include."""
    _by_compartment(w, lambda patient: f"/Patient/{patient}/$everything")


def _document_keys(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A summary's entries (but its Composition and author, made anew each time) and each section's entries."""
    base = str(document["entry"][0]["resource"]["subject"]["reference"]).rsplit("/", 2)[0]
    entries = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in document["entry"][2:]]
    sections = [[r["reference"].removeprefix(f"{base}/") for r in s.get("entry", [])]
                for s in document["entry"][0]["resource"]["section"]]
    return entries, sections


def summary(w: World) -> None:
    """``Patient/{id}/$summary`` (issue 19) for P and her golden record: the hidden resource is in no section,
    entry or narrative, the document is the open world's without it; a hidden Patient record or master
    answers as one never created (a facility never reads a golden record: 404 in both worlds)."""
    if _type(w) == "AuditEvent":
        return
    master = _master_of(w.open_, {}, "pat-p")
    for patient in ("pat-p", master):
        if w.hidden_key == f"Patient/{patient}":
            _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/$summary")
            continue
        seen, shown = w.open_.get(f"/Patient/{patient}/$summary"), w.hidden.get(f"/Patient/{patient}/$summary")
        assert seen.status_code == shown.status_code, (seen.text[:300], shown.text[:300])
        if seen.status_code != 200:
            assert seen.json() == shown.json()
            continue
        assert_unseen(shown.text, w.hidden_key)
        (entries, sections), (hidden_entries, hidden_sections) = _document_keys(seen.json()), _document_keys(
            shown.json())
        assert hidden_entries == [k for k in entries if k != w.hidden_key]
        assert hidden_sections == [[k for k in keys if k != w.hidden_key] for keys in sections]
        if patient == "pat-p" and _type(w) == "Observation":  # the world is as meant: the open world lists it
            assert w.hidden_key in entries


def _by_compartment(w: World, path_of: Callable[[str], str], *, post: bool = False) -> None:
    """A read path over a patient's compartment, for P and for her golden record (which spans her linked
    records), whole and one per page; AuditEvents are in no compartment. The golden record's is searched
    through the golden record itself: when that is the hidden resource, the compartment is empty (as an
    unknown patient's), so there the hidden world's results are only a subset."""
    if _type(w) == "AuditEvent":
        return
    master = _master_of(w.open_, {}, "pat-p")
    for patient in ("pat-p", master):
        exact = w.hidden_key != f"Patient/{patient}" or patient != master
        path = path_of(patient)
        _both(w, f"{path}?_count=500", exact=exact)
        if post:
            _both(w, f"{path}/_search", "POST", content="_count=500", exact=exact,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        seen, _, _ = _all_pages(w.open_, f"{path}?_count=2")
        shown, positions, texts = _all_pages(w.hidden, f"{path}?_count=2")
        if exact:
            assert shown == [k for k in seen if k != w.hidden_key]
        else:
            assert set(shown) <= set(seen) - {w.hidden_key}
        # the client's own path is in every page link
        assert_unseen(texts.replace(path, "") + orjson.dumps(positions).decode(), w.hidden_key)


def search_by_id(w: World) -> None:
    _both(w, f"/{_type(w)}?_id={w.hidden_key.split('/', 1)[1]}")


def system_search(w: World) -> None:
    if _type(w) != "AuditEvent":
        _both(w, f"/?_type={_type(w)}&_count=100")
        _both(w, "/_search", "POST", content=f"_type={_type(w)}&_count=100",
              headers={"Content-Type": "application/x-www-form-urlencoded"})


def _visible_in_open(w: World) -> bool:
    """Counted by the type's (and for AuditEvents Q's) unfiltered searches in the open world (which leave
    masters out: they are asked for by ``_id`` or ``_tag``)."""
    return bool(w.open_.get(f"/{w.hidden_key}").status_code == 200) and not is_master_key(w.hidden_key)


def summary_count(w: World) -> None:
    _both(w, f"/{_type(w)}?{_scope(w)}_summary=count", counted=_visible_in_open(w))


def total_accurate(w: World) -> None:
    _both(w, f"/{_type(w)}?{_scope(w)}_total=accurate&_count=100", counted=_visible_in_open(w))


def elements(w: World) -> None:
    _both(w, f"/{_type(w)}?{_scope(w)}_elements=id&_count=100")


def paging(w: World) -> None:
    """Every page of a one-per-page search: the hidden resource is on none, and the pages are one fewer."""
    url = f"/{_type(w)}?{_scope(w)}_count=1"
    seen, _, _ = _all_pages(w.open_, url)
    shown, positions, texts = _all_pages(w.hidden, url)
    assert shown == [k for k in seen if k != w.hidden_key]
    assert_unseen(texts + orjson.dumps(positions).decode(), w.hidden_key)
    if _type(w) == "Observation":
        sorted_url = "/Observation?_sort=-_lastUpdated&_count=2"
        seen, _, _ = _all_pages(w.open_, sorted_url)
        shown, positions, texts = _all_pages(w.hidden, sorted_url)
        assert shown == [k for k in seen if k != w.hidden_key]
        assert_unseen(texts + orjson.dumps(positions).decode(), w.hidden_key)


def includes(w: World) -> None:
    _both(w, "/Observation?_include=Observation:has-member&_count=100")
    _both(w, "/DiagnosticReport?_include=DiagnosticReport:result")
    _both(w, "/Observation?_id=obs-v2&_revinclude=Provenance:target")


def revincludes(w: World) -> None:
    _both(w, "/Patient?_id=pat-p&_revinclude=Observation:subject&_revinclude=Provenance:target")
    _both(w, "/Observation?_id=obs-v1&_revinclude=Observation:has-member&_revinclude=DiagnosticReport:result")


def iterate(w: World) -> None:
    _both(w, "/Observation?_id=obs-v3&_include:iterate=Observation:has-member")
    _both(w, "/Patient?_id=pat-p&_revinclude=Observation:subject&_include:iterate=Observation:has-member"
             "&_revinclude:iterate=Provenance:target")


def chains_and_has(w: World) -> None:
    """The hidden Observation's code must not be reachable through a chain or a reverse chain."""
    code = f"urn:code|{HIDDEN_CODE}"
    for url in (f"/DiagnosticReport?result.code={code}", f"/Patient?_has:Observation:subject:code={code}",
                "/Observation?_has:DiagnosticReport:result:status=final",
                f"/Observation?_has:Observation:has-member:code={code}"):
        _both(w, url, exact=False)
    if _type(w) == "Observation":  # the hidden Observation alone has that code: the chain finds nothing
        assert w.hidden.get(f"/DiagnosticReport?result.code={code}").json()["total"] == 0
        assert w.hidden.get(f"/Patient?_has:Observation:subject:code={code}").json()["total"] == 0


def audit_events(w: World) -> None:
    """AuditEvents of Q's record: by id, by patient, as type history (beyond a resident's own, by the
    operator: a facility's tokens read no AuditEvent)."""
    admin = {"headers": w.tokens["operator"]} if w.role == "system" else {}
    _both(w, "/AuditEvent?patient=Patient/pat-q&_count=100", **admin)
    if _type(w) == "AuditEvent":
        _both(w, f"/AuditEvent?_id={w.hidden_key.split('/', 1)[1]}", **admin)
        _both(w, "/AuditEvent/_history?_count=100", **admin)


def provenance(w: World) -> None:
    _both(w, "/Provenance?target=Observation/obs-v2")
    _both(w, "/Provenance?_count=100")


def _match(client: TestClient, demographics: dict[str, Any]) -> Any:
    return client.post("/Patient/$match", headers=FHIR, json={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient", **demographics}}]})


def patient_match(w: World) -> None:
    """``Patient/$match`` for P's demographics answers P's person (her master). A hidden master is neither
    answered nor counted: P's record the caller sees stands for her person instead; a hidden source is no
    evidence, so when it is P's only record her person is unknown, exactly as a person nobody recorded."""
    seen, shown = _match(w.open_, P_DEMOGRAPHICS), _match(w.hidden, P_DEMOGRAPHICS)
    assert _keys(seen.json(), "match"), "the open world finds P's person"
    if is_master_key(w.hidden_key) and w.hidden_key in _keys(seen.json(), "match"):
        assert_unseen(shown.text, w.hidden_key)
        assert _keys(shown.json(), "match") == ["Patient/pat-p"] and shown.json()["total"] == 1
        return
    source = w.hidden_key == "Patient/pat-p"
    assert_listing_without(seen, shown, w.hidden_key, counted=w.hidden_key in _keys(seen.json(), "match"),
                           exact=not source)
    if source:
        nobody = _match(w.hidden, {"name": [{"family": "Vương", "given": ["Khả", "Di"]}], "birthDate": "1901-02-03"})
        body, blank = shown.json(), nobody.json()
        assert shown.status_code == nobody.status_code == 200
        assert (body["total"], body.get("entry")) == (blank["total"], blank.get("entry")) == (0, None)


def _audit_pages(client: TestClient, url: str, headers: dict[str, str] | None) -> tuple[list[str], list[Any], str]:
    """Every page of an AuditEvent listing: the keys, each page's total, and what a leak could hide in: the
    events but their ``entity`` (what an event recorded, which names the resources it reached: leaving a
    hidden one out of it is redaction, the consent issue's), the links but self, and the page tokens."""
    keys: list[str] = []
    totals: list[Any] = []
    text = ""
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        keys += _keys(body, "match")
        totals.append(body.get("total"))
        events = [{k: v for k, v in e["resource"].items() if k != "entity"} for e in body.get("entry", [])]
        links = [link for link in body.get("link", []) if link["relation"] != "self"]
        text += orjson.dumps([events, links, _tokens(body), {k: v for k, v in body.items() if k not in
                                                             ("entry", "link")}]).decode()
        url = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), "")
    return keys, totals, text


def _audit_listing_without(w: World, path: str, headers: dict[str, str] | None = None) -> list[str]:
    """``path`` in both worlds, on one page and on pages of three: the hidden world lists the open world's
    events without the hidden one (a hidden Patient record: without that record's events, a subset), every
    page's total is the open total less what it left out, and nothing names the hidden resource. The open
    world's keys, in order. (Pages of three, not one: every request is audited, and a world's trail writes
    a batch, changing the logs compared, once 200 entries wait; a world leaves about 160.)"""
    for count in (100, 3):
        url = f"{path}?_count={count}"
        seen, seen_totals, _ = _audit_pages(w.open_, url, headers)
        shown, totals, text = _audit_pages(w.hidden, url, headers)
        assert_unseen(text, w.hidden_key)
        if _type(w) == "Patient":
            assert set(shown) <= set(seen)
        else:
            assert shown == [k for k in seen if k != w.hidden_key]
        assert set(seen_totals) == {len(seen)} and set(totals) == {len(shown)}
    return seen


def access_log(w: World) -> None:
    """``Patient/$access-log`` (issue 17): the resident's own log, P's and Q's for the hub's operator; a
    withheld AuditEvent is neither listed nor counted, on one page or many, and the emergency access on
    P's record comes first. The log of a record the operator may not see answers as an absent record's."""
    operator = w.tokens["operator"]
    logs = [("/Patient/$access-log", None)] if w.role == "resident" else \
        [(f"/Patient/{p}/$access-log", operator) for p in ("pat-p", "pat-q")]
    for path, headers in logs:
        if w.role == "system" and f"/{w.hidden_key}/" in path:
            _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/$access-log", headers=operator)
            continue
        seen = _audit_listing_without(w, path, headers)
        if "pat-q" not in path:
            first = w.open_.get(f"/{seen[0]}", headers=operator).json()
            assert _is_emergency(first), "the emergency access comes first"
    if is_master_key(w.hidden_key) and w.role == "system":
        _same_as_absent(w.hidden, w.hidden_key, "/{rtype}/{rid}/$access-log", headers=operator)
    if w.role == "system":  # a facility may not read who else accessed a record
        for client in (w.open_, w.hidden):
            assert client.get("/Patient/pat-p/$access-log", headers=w.tokens["system"]).status_code == 403


def emergency_access(w: World) -> None:
    """``AuditEvent/$emergency-access`` (issue 17), for the facility whose clinician broke the glass and for
    the operator; a resident may not ask (403 in both worlds, the same answer)."""
    if w.role == "resident":
        seen, shown = w.open_.get("/AuditEvent/$emergency-access"), w.hidden.get("/AuditEvent/$emergency-access")
        assert seen.status_code == shown.status_code == 403 and seen.text == shown.text
        return
    for who in ("facility", "operator"):
        assert _audit_listing_without(w, "/AuditEvent/$emergency-access", w.tokens[who])
    mine = w.open_.get("/AuditEvent/$emergency-access", headers=w.tokens["system"])
    assert mine.json()["total"] == 0  # 79001's staff broke no glass


PATHS: list[Path] = [read, read_head, read_subset, vread, instance_history, type_history, system_history,
                     search_get, search_post, compartment_search, everything, search_by_id, system_search,
                     summary_count, total_accurate, elements, paging, includes, revincludes, iterate, chains_and_has,
                     audit_events, provenance, patient_match, access_log, emergency_access, access_check, risk,
                     cohorts, validate_delete, summary]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__)
def test_hidden_resource_is_invisible(world: World, path: Path) -> None:
    path(world)


# ------------------------------------------------- conditional matching, Bundle entries, ingestion
ABSENT_IDENT = "urn:lab|ident-nobody-has"
Send = Callable[[TestClient, str, str], Any]  # (client, identifier system|value, id) -> response


def _normal(response: Any, ident: str, rid: str) -> Any:
    """What a client can tell from an answer, with the names it was given swapped for placeholders and
    what differs on every request (new ids, times) left out."""
    text = response.text.replace(ident.split("|", 1)[1], "<ident>").replace(rid, "<id>")
    body = orjson.loads(text) if text.startswith("{") else text
    if not isinstance(body, dict):
        return response.status_code, body
    kind = body.get("resourceType")
    if kind == "OperationOutcome":
        return response.status_code, [(i["code"], i.get("diagnostics")) for i in body["issue"]]
    if kind == "Bundle":
        return response.status_code, [(e["response"]["status"], _normal_resource(e.get("resource")),
                                       _normal_resource(e["response"].get("outcome")))
                                      for e in body.get("entry", [])]
    if kind == "Parameters":
        return response.status_code, sorted((p["name"], p.get("valueInteger")) for p in body["parameter"]
                                            if "valueInteger" in p)
    return response.status_code, kind


def _normal_resource(resource: dict[str, Any] | None) -> Any:
    if resource is None:
        return None
    if resource["resourceType"] == "OperationOutcome":
        return [(i["code"], i.get("diagnostics")) for i in resource["issue"]]
    if resource["resourceType"] == "Bundle":
        return resource.get("total"), _keys(resource, None)
    return resource["resourceType"]


def _observation(ident: str) -> dict[str, Any]:
    system, _, value = ident.partition("|")
    return {"resourceType": "Observation", "status": "final", "code": {"text": "sent again"},
            "subject": {"reference": "Patient/pat-p"}, "identifier": [{"system": system, "value": value}]}


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def conditional_create(c: TestClient, ident: str, _rid: str) -> Any:
    return c.post("/Observation", json=_observation(ident), headers={**FHIR, "If-None-Exist": f"identifier={ident}"})


def conditional_create_in_url(c: TestClient, ident: str, _rid: str) -> Any:
    """The criteria in the URL (fhirpy's ``get_or_create``, issue 21): the same conditional create."""
    return c.post(f"/Observation?identifier={ident}", json=_observation(ident), headers=FHIR)


def conditional_update(c: TestClient, ident: str, _rid: str) -> Any:
    return c.put(f"/Observation?identifier={ident}", json=_observation(ident), headers=FHIR)


def conditional_patch(c: TestClient, ident: str, _rid: str) -> Any:
    return c.patch(f"/Observation?identifier={ident}", content=b'[{"op":"replace","path":"/status","value":"amended"}]',
                   headers={"Content-Type": "application/json-patch+json"})


def conditional_delete(c: TestClient, ident: str, _rid: str) -> Any:
    return c.delete(f"/Observation?identifier={ident}")


def batch_reads(c: TestClient, ident: str, rid: str) -> Any:
    return c.post("/", json=_bundle("batch", {"request": {"method": "GET", "url": f"Observation/{rid}"}},
                                    {"request": {"method": "GET", "url": f"Observation/{rid}/_history/1"}},
                                    {"request": {"method": "GET", "url": f"Observation?identifier={ident}"}}),
                  headers=FHIR)


def transaction_if_none_exist(c: TestClient, ident: str, _rid: str) -> Any:
    return c.post("/", json=_bundle("transaction", {
        "fullUrl": "urn:uuid:5e0ee0b8-2b9a-4cf1-9d59-0c4b1f1a0001", "resource": _observation(ident),
        "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier={ident}"}}), headers=FHIR)


def transaction_conditional_update(c: TestClient, ident: str, _rid: str) -> Any:
    return c.post("/", json=_bundle("transaction", {
        "resource": _observation(ident), "request": {"method": "PUT", "url": f"Observation?identifier={ident}"}}),
        headers=FHIR)


def transaction_conditional_reference(c: TestClient, ident: str, _rid: str) -> Any:
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "panel"},
              "result": [{"reference": f"Observation?identifier={ident}"}]}
    return c.post("/", json=_bundle("transaction", {"resource": report,
                                                    "request": {"method": "POST", "url": "DiagnosticReport"}}),
                  headers=FHIR)


def ingest(c: TestClient, ident: str, _rid: str) -> Any:
    """An FHIR NDJSON payload with an Observation carrying the identifier: the hub creates a resource once
    per business identifier, so a hidden match would show as 'existing' instead of 'created'."""
    return c.post("/$ingest", content=orjson.dumps(_observation(ident)) + b"\n",
                  headers={"Content-Type": "application/fhir+ndjson", "Accept": "application/fhir+json"})


def ingest_later(c: TestClient, ident: str, _rid: str) -> Any:
    """The same payload as a backfill (``Prefer: respond-async``): queued, run by a worker of the app's hub,
    then its report from ``$ingest-status``: 'existing' would betray the hidden match the same way."""
    queued = c.post("/$ingest", content=orjson.dumps(_observation(ident)) + b"\n",
                    headers={"Content-Type": "application/fhir+ndjson", "Accept": "application/fhir+json",
                             "Prefer": "respond-async"})
    assert queued.status_code == 202, queued.text[:300]
    hub = c.app.state.hub  # type: ignore[attr-defined]
    assert c.portal is not None
    c.portal.call(lambda: Worker(hub).run(asyncio.Event(), until_empty=True))
    where = queued.headers["Content-Location"]
    return c.get(where[where.index("/$"):], headers={"Accept": "application/fhir+json"})


def patch_by_id(c: TestClient, _ident: str, rid: str) -> Any:
    return c.patch(f"/Observation/{rid}", content=b'[{"op":"replace","path":"/status","value":"amended"}]',
                   headers={"Content-Type": "application/json-patch+json"})


def delete_by_id(c: TestClient, _ident: str, rid: str) -> Any:
    return c.delete(f"/Observation/{rid}")


CONDITIONAL: list[Send] = [conditional_create, conditional_create_in_url, conditional_update, conditional_patch,
                           conditional_delete, patch_by_id, delete_by_id, batch_reads, transaction_if_none_exist,
                           transaction_conditional_update, transaction_conditional_reference, ingest, ingest_later]

# Every interaction a route serves, and the paths of this suite that cover it. A new route's interaction
# code fails test_every_interaction_is_covered until it joins the suite (or is listed as reading nothing).
COVERED: dict[str, list[Callable[..., None]]] = {
    "read": [read, read_head, read_subset], "vread": [vread, read_head, read_subset],
    "history-instance": [instance_history], "history-type": [type_history],
    "history-system": [system_history], "search-type": [search_get, search_by_id, summary_count, total_accurate,
                                                        elements, paging, includes, revincludes, iterate,
                                                        chains_and_has, audit_events, provenance],
    "search-type-post": [search_post], "search-system": [system_search], "search-system-post": [system_search],
    "search-compartment": [compartment_search], "search-compartment-post": [compartment_search],
    "everything": [everything], "summary": [summary],
    "create": [conditional_create, conditional_create_in_url], "conditional-update": [conditional_update],
    "conditional-patch": [conditional_patch], "conditional-delete": [conditional_delete], "patch": [patch_by_id],
    "delete": [delete_by_id], "ingest": [ingest, ingest_later], "ingest-status": [ingest_later],
    "transaction": [batch_reads, transaction_if_none_exist,
                                                                 transaction_conditional_update,
                                                                 transaction_conditional_reference],
    # a person's records (issue 16): tests/read_paths/person_paths.py, a hidden Patient record
    "links": [person_paths.links], "review-list": [person_paths.review_list], "merge": [person_paths.merge],
    "review": [person_paths.review], "unmerge": [person_paths.unmerge],
    "match": [patient_match], "access-check": [access_check], "risk": [risk],
    "risk-cohort": [cohorts], "priority-worklist": [cohorts],  # the priority record (issue 18)
    # the audit trail for those it concerns (issue 17)
    "access-log": [access_log], "emergency-access": [emergency_access],
    "validate": [validate_delete],  # $validate (issue 20): mode=delete reads the instance
}
READS_NOTHING = {
    "capabilities": "the CapabilityStatement holds no resource",
    # PUT by id to a resource the caller may not see answers 404 (a resident's PUT never creates); to an
    # id that does not exist a hospital system's PUT creates it (201). The client chose the id, so the
    # difference is inherent to update-as-create; the resource's content is never reached.
    "update": "tested in tests/api/test_security.py (a resident's PUT never creates)",
    "replay": "re-maps an archived payload through the same ingest path (covered by 'ingest'): the archive is "
              "the sender's own",
    "queue-status": "counts of the queue's jobs by state and tier, for the hub's operator: no resource",
}


def test_every_interaction_is_covered() -> None:
    """The suite grows with the routes: each interaction the app serves is covered here or named above."""
    app = create_app(Settings(mongodb_uri="mongodb://unused", db_name="unused"))
    served = {route.openapi_extra["x-fhir-interaction"]["code"] for route in app.routes
              if getattr(route, "openapi_extra", None) and "x-fhir-interaction" in route.openapi_extra}
    assert served, "no FHIR routes found"
    missing = served - set(COVERED) - set(READS_NOTHING)
    assert not missing, f"interactions outside the read-path contract suite: {sorted(missing)}"
    for paths in COVERED.values():
        assert all(p in PATHS or p in CONDITIONAL or p in PERSON_PATHS for p in paths)


@pytest.fixture
def fresh(mongodb_uri: str, tmp_path: Any) -> Iterator[World]:
    """A world of its own: these interactions write."""
    with seeded_world(mongodb_uri, tmp_path, "Observation", "system") as made:
        yield made


@pytest.mark.parametrize("send", CONDITIONAL, ids=lambda s: s.__name__)
def test_hidden_resource_is_never_matched(fresh: World, send: Send) -> None:
    """Aimed at the hidden Observation (by its identifier or id), each answers exactly as when aimed at
    nothing, and the hidden Observation is left as it was."""
    before = fresh.open_.get(f"/Observation/{HIDDEN_OBS}").json()
    at_hidden = send(fresh.hidden, HIDDEN_IDENT, HIDDEN_OBS)
    at_nothing = send(fresh.hidden, ABSENT_IDENT, ABSENT)
    assert _normal(at_hidden, HIDDEN_IDENT, HIDDEN_OBS) == _normal(at_nothing, ABSENT_IDENT, ABSENT)
    assert at_hidden.text.count(HIDDEN_OBS) == at_nothing.text.count(ABSENT)  # only where the client named it
    assert fresh.open_.get(f"/Observation/{HIDDEN_OBS}").json() == before


@pytest.fixture(scope="module")
def person(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PersonWorld]:
    with person_world(mongodb_uri, tmp_path_factory.mktemp("person")) as made:
        yield made


@pytest.mark.parametrize("path", PERSON_PATHS, ids=lambda p: p.__name__)
def test_a_hidden_patient_record_never_shows_through_its_person(person: PersonWorld,
                                                                 path: Callable[[PersonWorld], None]) -> None:
    """The link operations (issue 16) read a person's records: a hidden record is not listed, and naming it
    answers as naming nothing (tests/read_paths/person_paths.py)."""
    path(person)
