"""Bad input: each case answered with an OperationOutcome, the right status, a message naming the element,
and nothing stored."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import assert_outcome as assert_any_outcome
from tests.conftest import auth, token_for

FHIR = {"Content-Type": "application/fhir+json"}


def assert_outcome(response: Any, status: int, code: str, *, mentions: str = "", expression: str | None = None
                   ) -> dict[str, Any]:
    body = assert_any_outcome(response, status, code)
    assert response.headers["content-type"].startswith("application/fhir+json")
    issue = body["issue"][0]
    assert issue["severity"] == "error"
    assert mentions in issue["diagnostics"], issue
    if expression is not None:
        assert expression in issue.get("expression", []), issue
    return body


def nothing_stored(client: TestClient) -> None:
    history = client.get("/_history").json()
    assert "entry" not in history, history


@pytest.mark.parametrize(
    ("body", "status", "code", "mentions", "expression"),
    [
        (b'{"resourceType": "Patient",', 400, "invalid", "not valid JSON", None),
        # a byte-order mark is skipped (issue 21; tests/api/test_http_conventions.py), what follows still judged
        (b"\xef\xbb\xbf" + b'{"resourceType": "Patient",', 400, "invalid", "not valid JSON", None),
        (b"", 400, "invalid", "empty", None),
        (b"[1, 2]", 400, "invalid", "JSON object", None),
        (b'{"name": []}', 400, "structure", "resourceType", "resourceType"),
        (b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}}', 400, "structure",
         "'Observation' but the URL is for 'Patient'", "resourceType"),
        (b'{"resourceType": "Patient", "nickname": "Ut"}', 400, "structure", "unknown element", "Patient.nickname"),
        (b'{"resourceType": "Patient", "$where": "1"}', 400, "structure", "unknown element", "Patient.$where"),
        (b'{"resourceType": "Patient", "birthDate": "1990-13-45"}', 400, "value", "1990-13-45", "Patient.birthDate"),
        (b'{"resourceType": "Patient", "active": "yes"}', 400, "value", "boolean", "Patient.active"),
        (b'{"resourceType": "Patient", "multipleBirthInteger": "2"}', 400, "value", "integer",
         "Patient.multipleBirthInteger"),
        (b'{"resourceType": "Patient", "name": [{"given": "An"}]}', 400, "structure", "", "Patient.name[0].given"),
        (b'{"resourceType": "Patient", "name": []}', 400, "structure", "empty arrays", "Patient.name"),
        (b'{"resourceType": "Patient", "name": [{}]}', 400, "structure", "empty objects", "Patient.name[0]"),
        (b'{"resourceType": "Patient", "gender": null}', 400, "structure", "null", "Patient.gender"),
        (b'{"resourceType": "Patient", "contained": [{"resourceType": "Spaceship"}]}', 400, "structure",
         "Spaceship", None),
        (b'{"resourceType": "Patient", "contained": [{"resourceType": "Observation", "code": {"text": "x"}}]}',
         422, "required", "required", "Patient.contained[0].status"),
        (b'{"resourceType": "Patient", "name": [{"family": "Nguy\\u0000n"}]}', 400, "value", "U+0000",
         "Patient.name[0].family"),
        (b'{"resourceType": "Patient", "name": [{"given": ["A\\bn"]}]}', 400, "value", "U+0008",
         "Patient.name[0].given[0]"),
        (b'{"resourceType": "Patient", "gender": "male", "gender": "female"}', 400, "structure", "twice",
         "Patient.gender"),
        (b'{"resourceType": "Patient", "multipleBirthInteger": 1e-400}', 400, "value", "out of range",
         "Patient.multipleBirthInteger"),
        (b'{"resourceType": "Patient", "multipleBirthInteger": 1e400}', 400, "value", "out of range",
         "Patient.multipleBirthInteger"),
        (b'{"resourceType": "Patient", "multipleBirthInteger": 99999999999999999999}', 400, "value", "out of range",
         "Patient.multipleBirthInteger"),
    ],
    ids=["truncated", "bom-then-truncated", "empty", "array", "no-type", "wrong-type", "unknown-element", "dollar-key",
         "bad-date", "bool-as-string", "int-as-string", "list-expected", "empty-array", "empty-object", "null",
         "unknown-nested-type", "nested-missing-required", "nul-in-a-string", "backspace-in-a-string",
         "key-twice", "number-underflows", "number-overflows", "integer-past-64-bits"],
)
def test_bad_create_bodies(client: TestClient, body: bytes, status: int, code: str, mentions: str,
                           expression: str | None) -> None:
    assert_outcome(client.post("/Patient", content=body, headers=FHIR), status, code, mentions=mentions,
                   expression=expression)
    nothing_stored(client)


def test_a_repeated_key_or_a_nul_in_a_bundle_entry_or_a_patch_is_refused(client: TestClient) -> None:
    entry = b'{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient","gender":"male",'
    bundle = b'{"resourceType":"Bundle","type":"transaction","entry":[' + entry + b'"gender":"female"}}]}'
    assert_outcome(client.post("/", content=bundle, headers=FHIR), 400, "structure", mentions="twice",
                   expression="Bundle.entry[0].resource.gender")
    nothing_stored(client)
    created = client.post("/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=FHIR).json()
    json_patch = b'[{"op":"replace","path":"/gender","value":"female","value":"other"}]'
    assert_outcome(client.patch(f"/Patient/{created['id']}", content=json_patch,
                                headers={"Content-Type": "application/json-patch+json"}), 400, "structure",
                   mentions="twice", expression="$[0].value")
    fhirpath_patch = (b'{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type",'
                      b'"valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},'
                      b'{"name":"value","valueCode":"fe\\u0000male"}]}]}')
    assert_outcome(client.patch(f"/Patient/{created['id']}", content=fhirpath_patch, headers=FHIR), 400, "value",
                   mentions="U+0000", expression="Parameters.parameter[0].part[2].valueCode")
    assert client.get(f"/Patient/{created['id']}").json()["meta"]["versionId"] == "1"


def test_missing_required_element_is_422(client: TestClient) -> None:
    body = {"resourceType": "Observation", "code": {"text": "Huyết áp"}}
    assert_outcome(client.post("/Observation", json=body, headers=FHIR), 422, "required",
                   mentions="Observation.status", expression="Observation.status")
    nothing_stored(client)


def test_update_id_rules(client: TestClient) -> None:
    assert_outcome(client.put("/Patient/a1", json={"resourceType": "Patient", "id": "b2"}, headers=FHIR), 400,
                   "invalid", mentions="'b2'", expression="Patient.id")
    assert_outcome(client.put("/Patient/a1", json={"resourceType": "Patient"}, headers=FHIR), 400, "invalid",
                   mentions="must carry the id", expression="Patient.id")
    for bad in ("bad$id", "x" * 65, "with space", "ü"):
        assert_outcome(client.put(f"/Patient/{bad}", json={"resourceType": "Patient", "id": bad}, headers=FHIR),
                       400, "invalid", mentions="not a valid FHIR id", expression="id")
        assert client.get(f"/Patient/{bad}").status_code == 400
    nothing_stored(client)


def test_unknown_resource_type_is_404(client: TestClient) -> None:
    for method, url in (("GET", "/Spaceship"), ("POST", "/Spaceship"), ("GET", "/Spaceship/1"),
                        ("DELETE", "/Spaceship/1"), ("GET", "/Parameters/1")):
        assert_outcome(client.request(method, url, json={"resourceType": "Spaceship"}), 404, "not-supported",
                       mentions="is not supported")


def test_media_types(client: TestClient) -> None:
    xml = b'<Patient xmlns="http://hl7.org/fhir"/>'
    assert_outcome(client.post("/Patient", content=xml, headers={"Content-Type": "application/fhir+xml"}), 415,
                   "not-supported", mentions="XML")
    assert_outcome(client.post("/Patient", content=b"{}", headers={"Content-Type": "text/plain"}), 415,
                   "not-supported")
    latin = {"Content-Type": "application/fhir+json; charset=iso-8859-1"}
    assert_outcome(client.post("/Patient", content=b'{"resourceType":"Patient"}', headers=latin), 415,
                   "not-supported", mentions="charset")
    assert_outcome(client.get("/metadata", headers={"Accept": "application/xml"}), 406, "not-supported")
    nothing_stored(client)


def test_methods_not_allowed(client: TestClient) -> None:
    for method, url in (("POST", "/Patient/1"), ("DELETE", "/metadata"), ("PATCH", "/_history"),
                        ("PUT", "/Patient/1/_history/1")):
        assert_outcome(client.request(method, url), 405, "not-supported", mentions="not allowed")
    assert_outcome(client.get("/no/such/endpoint/here"), 404, "not-found")


def test_count_and_parameter_limits(client: TestClient) -> None:
    assert_outcome(client.get("/Patient", params={"_count": "1001"}), 400, "invalid", mentions="maximum",
                   expression="_count")
    assert_outcome(client.get("/Patient", params={"_count": "-1"}), 400, "invalid", expression="_count")
    assert_outcome(client.get("/Patient", params={"_count": "lots"}), 400, "invalid", expression="_count")
    assert_outcome(client.get("/Patient", params={"_page": "bm90LWEtcGFnZQ"}), 400, "invalid", expression="_page")


def test_operator_lookalikes_are_plain_values(client: TestClient) -> None:
    client.post("/Patient", json={"resourceType": "Patient", "identifier": [{"value": "1"}]}, headers=FHIR)
    for value in ('{"$gt": ""}', "$where", "a.b", "$ne|1"):
        found = client.get("/Patient", params={"identifier": value}).json()
        assert found["total"] == 0
    found = client.get("/Patient", params={"_id": '{"$ne": null}'}).json()
    assert found["total"] == 0
    lenient = client.get("/Patient", params={"identifier[$ne]": "x"}).json()
    assert lenient["total"] == 1  # an unknown parameter is ignored, never interpreted


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.with_(max_body_bytes=200)), raise_server_exceptions=False,
                    headers=auth(token_for(settings))) as client:
        yield client


def test_body_size_limit(small_limit_client: TestClient) -> None:
    big = orjson.dumps({"resourceType": "Patient", "name": [{"text": "x" * 300}]})
    assert_outcome(small_limit_client.post("/Patient", content=big, headers=FHIR), 413, "too-long",
                   mentions="200 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        yield big[:150]
        yield big[150:]

    assert_outcome(small_limit_client.post("/Patient", content=chunks(), headers=FHIR), 413, "too-long")
    ok = small_limit_client.post("/Patient", content=b'{"resourceType":"Patient"}', headers=FHIR)
    assert ok.status_code == 201


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
patient_like = st.fixed_dictionaries({"resourceType": st.just("Patient")}, optional={
    "active": json_values, "birthDate": json_values, "gender": json_values, "name": json_values,
    "identifier": json_values, "telecom": json_values, "extension": json_values, "contained": json_values,
    "x": json_values,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(patient_like, json_values))
def test_any_json_body_gets_a_fhir_answer(module_client: TestClient, body: Any) -> None:
    before = module_client.get("/Patient/_history", params={"_count": 0}).json().get("entry")
    response = module_client.post("/Patient", content=orjson.dumps(body), headers=FHIR)
    assert response.status_code in (201, 400, 422), response.text
    answer = response.json()
    if response.status_code == 201:
        assert answer["resourceType"] == "Patient"
    else:
        assert answer["resourceType"] == "OperationOutcome"
        assert answer["issue"][0]["diagnostics"]
        assert module_client.get("/Patient/_history", params={"_count": 0}).json().get("entry") == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_fhir_answer(module_client: TestClient, raw: bytes) -> None:
    response = module_client.post("/Patient", content=raw, headers=FHIR)
    assert response.status_code in (201, 400, 422)
    assert response.headers["content-type"].startswith("application/fhir+json")


def test_search_values_are_never_patterns(client: TestClient) -> None:
    """A system ending in ``|`` is matched by prefix: regex characters in it must stay literal."""
    for system in ("urn:a.b", "urn:axb", "urn:a.b.c"):
        client.post("/Patient", json={"resourceType": "Patient", "identifier": [{"system": system, "value": "1"}]},
                    headers=FHIR)
    assert client.get("/Patient", params={"identifier": "urn:a.b|"}).json()["total"] == 1
    assert client.get("/Patient", params={"identifier": "urn:a.*|"}).json()["total"] == 0
    assert client.get("/Patient", params={"identifier": "urn:a.b|1"}).json()["total"] == 1


def test_bundle_entry_limit(settings: Settings) -> None:
    with TestClient(create_app(settings.with_(max_bundle_entries=3)), raise_server_exceptions=False,
                    headers=auth(token_for(settings))) as client:
        entries = [{"resource": {"resourceType": "Patient"}} for _ in range(4)]
        body = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        assert_outcome(client.post("/Bundle", json=body, headers=FHIR), 413, "too-long", mentions="at most 3",
                       expression="Bundle.entry")
        nothing_stored(client)
        assert client.post("/Bundle", json={**body, "entry": entries[:3]}, headers=FHIR).status_code == 201


# ------------------------------------------------------------------------------------------ forged _page
def page_token(position: Any) -> str:
    """A token written as the hub writes its own (URL-safe base64 of JSON), of any position."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def nested_token(depth: int) -> str:
    return base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).decode()


BEYOND_64_BITS = st.integers(2**63, 10**30) | st.integers(-(10**30), -(2**63) - 1)
NUMBER = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
SORT_VALUE = st.text(max_size=6) | NUMBER
NO_VALUE = st.none() | st.booleans() | BEYOND_64_BITS | st.lists(st.integers(), max_size=1) | st.dictionaries(
    st.text(max_size=3), st.integers(), min_size=1, max_size=2)
NOT_TEXT = NUMBER | NO_VALUE
NOT_A_COUNT = (st.integers(-(2**63), -1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4)
               | NO_VALUE)
DIRECTION = st.sampled_from(["after", "before"])
FORGED_POSITIONS = st.one_of(
    SORT_VALUE, NO_VALUE, st.lists(SORT_VALUE, min_size=4, max_size=6),  # not the shape of any page token
    st.tuples(DIRECTION, st.lists(SORT_VALUE, max_size=2), NO_VALUE, st.integers(0, 2)).map(  # a search position
        lambda t: [t[0], [*t[1][:t[3]], t[2], *t[1][t[3]:]]]),  # with something no sort value is in it
    st.tuples(DIRECTION, st.lists(SORT_VALUE, max_size=2), NOT_TEXT).map(lambda t: [t[0], [*t[1], t[2]]]),  # no key
    st.tuples(DIRECTION, SORT_VALUE | st.just([])).map(list),
    st.tuples(st.text(max_size=6).filter(lambda d: d not in ("after", "before")), st.lists(st.text(), max_size=2)
              ).map(list),
    st.tuples(NOT_A_COUNT, st.text(max_size=6), st.integers(1, 10**6)).map(list),  # a history position: (time,
    st.tuples(st.integers(0, 2**62), NOT_TEXT, st.integers(1, 10**6)).map(list),  # key, version) out of range
    st.tuples(st.integers(0, 2**62), st.text(max_size=6), NOT_A_COUNT | st.just(0)).map(list),  # or of a wrong type
)
FORGED_TOKENS = st.one_of(
    st.text(max_size=40),  # base64 junk
    st.binary(max_size=60).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),  # base64 of what is no JSON
    FORGED_POSITIONS.map(page_token),
    st.integers(3, 2000).map(nested_token),  # lists in lists
)
PAGED = (("/Patient", {}), ("/Patient", {"_sort": "birthdate"}), ("/Patient", {"_sort": "-_lastUpdated,_id"}),
         ("/AuditEvent", {}), ("/", {"_type": "Patient"}), ("/_history", {}), ("/Patient/_history", {}))


def _reader(client: TestClient, path: str) -> dict[str, str]:
    """The audit trail is read by its administrator, the operator (a system token without a facility)."""
    return auth(token_for(client.app.state.hub.settings, facility=None)) if path == "/AuditEvent" else {}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def paged_client(module_client: TestClient) -> TestClient:
    """Results to page through, so that a position is compared with real ones; the tokens the hub writes
    still page every route, one result at a time, to the end."""
    for day in ("1948-01-01", "1990-05-17", "2001-12-31"):
        module_client.post("/Patient", json={"resourceType": "Patient", "birthDate": day}, headers=FHIR)
    for path, params in PAGED:
        page = module_client.get(path, params={**params, "_count": 1}, headers=_reader(module_client, path)).json()
        for _ in range(2):
            url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
            assert url is not None, (path, params, page)
            page = module_client.get(url, headers=_reader(module_client, path)).json()
            assert page["resourceType"] == "Bundle" and len(page["entry"]) == 1, (path, params, page)
    return module_client


@settings(max_examples=80, deadline=None)
@given(token=FORGED_TOKENS)
def test_a_forged_page_token_is_a_400_naming_page_for_search_and_history(paged_client: TestClient, token: str) -> None:
    for path, params in PAGED:
        response = paged_client.get(path, params={**params, "_page": token}, headers=_reader(paged_client, path))
        assert_outcome(response, 400, "invalid", mentions="_page", expression="_page")
