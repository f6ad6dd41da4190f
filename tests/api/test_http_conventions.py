"""HTTP conventions over HTTP (issue 21): HEAD, OPTIONS and 405 with Allow, CORS, gzip both ways, a
byte-order mark before a JSON body."""

from __future__ import annotations

import gzip
import tracemalloc
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_hub.api.compression import GZIP_MIN_BYTES
from fhir_hub.config import ConfigError, Settings
from fhir_hub.main import create_app
from tests.conftest import as_, assert_outcome, auth, token_for

FHIR = {"Content-Type": "application/fhir+json"}
PLAIN = {"Accept-Encoding": "identity"}  # httpx asks for gzip by default
INSTANCE_METHODS = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
TYPE_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
_UNCOMPARED = {"date", "content-length", "content-encoding", "vary"}


def patient(client: TestClient, **more: Any) -> dict[str, Any]:
    created = client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Trần"}], **more},
                          headers=FHIR)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def app_with(settings: Settings, **changes: Any) -> TestClient:
    return TestClient(create_app(settings.with_(**changes)), raise_server_exceptions=False,
                      headers=auth(token_for(settings)))


# ------------------------------------------------------------------------------------------- HEAD
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_head_answers_the_headers_of_the_get_without_its_body(client: TestClient, encoding: str) -> None:
    pid = patient(client, address=[{"text": "x" * GZIP_MIN_BYTES}])["id"]
    for url in (f"/Patient/{pid}", f"/Patient/{pid}/_history/1", f"/Patient/{pid}/_history", "/Patient?_count=5",
                "/metadata", "/Patient/never-created"):
        headers = {"Accept-Encoding": encoding}
        got, head = client.get(url, headers=headers), client.head(url, headers=headers)
        assert head.status_code == got.status_code, url
        assert head.content == b""
        assert head.headers.get("content-encoding") == got.headers.get("content-encoding"), url
        same = {k: v for k, v in head.headers.items() if k not in _UNCOMPARED}
        assert same == {k: v for k, v in got.headers.items() if k not in _UNCOMPARED}, url
    plain = client.get(f"/Patient/{pid}", headers=PLAIN)
    assert client.head(f"/Patient/{pid}", headers=PLAIN).headers["content-length"] == str(len(plain.content))


def test_head_goes_through_the_token_check_and_the_access_decision(client: TestClient, settings: Settings) -> None:
    pid = patient(client)["id"]
    assert client.head(f"/Patient/{pid}", headers={"Authorization": ""}).status_code == 401
    other = as_(settings, "resident", patient="somebody-else")
    assert client.get(f"/Patient/{pid}", headers=other).status_code == 404
    assert client.head(f"/Patient/{pid}", headers=other).status_code == 404
    own = as_(settings, "resident", patient=pid)
    assert client.head(f"/Patient/{pid}", headers=own).status_code == 200


def test_a_head_is_audited_as_a_head(client: TestClient) -> None:
    pid = patient(client)["id"]
    hub = client.app.state.hub  # type: ignore[attr-defined]
    seen: list[str] = []
    begin = hub.audit.begin

    def spy(**kwargs: Any) -> Any:
        seen.append(kwargs["method"])
        return begin(**kwargs)

    hub.audit.begin = spy
    client.head(f"/Patient/{pid}")
    client.get(f"/Patient/{pid}")
    assert seen == ["HEAD", "GET"]


# ---------------------------------------------------------------------------------- OPTIONS, 405
@pytest.mark.parametrize(("path", "allow"), [
    ("/Patient/p1", INSTANCE_METHODS),
    ("/Patient", TYPE_METHODS),
    ("/metadata", "GET, HEAD, OPTIONS"),
    ("/Patient/p1/_history/1", "GET, HEAD, OPTIONS"),
    ("/Patient/_history", "GET, HEAD, OPTIONS"),
    ("/", "GET, HEAD, POST, OPTIONS"),
    ("/Patient/$match", "POST, OPTIONS"),
])
def test_options_and_405_name_every_method_of_the_url(client: TestClient, path: str, allow: str) -> None:
    options = client.options(path)
    assert options.status_code == 204 and options.content == b""
    assert options.headers["allow"] == allow
    unused = next((m for m in ("PUT", "POST", "DELETE", "PATCH", "GET") if m not in allow), None)
    if unused is None:
        return
    refused = client.request(unused, path, content=b"{}", headers=FHIR)
    assert_outcome(refused, 405, "not-supported")
    assert refused.headers["allow"] == allow


def test_options_of_no_endpoint_is_a_404(client: TestClient) -> None:
    assert_outcome(client.options("/Patient/p1/nothing/here"), 404, "not-found")
    assert_outcome(client.options("/Spaceship"), 404)


# ------------------------------------------------------------------------------------------- CORS
def test_a_browser_app_gets_cors_headers_for_its_bearer_token_requests(client: TestClient) -> None:
    pid = patient(client)["id"]
    origin = {"Origin": "https://app.clinic.example"}
    preflight = client.options(f"/Patient/{pid}", headers={
        **origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization, accept"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    read = client.get(f"/Patient/{pid}", headers=origin)
    assert read.status_code == 200
    assert read.headers["access-control-allow-origin"] == "*"
    assert "ETag" in read.headers["access-control-expose-headers"]
    refused = client.get(f"/Patient/{pid}", headers={**origin, "Authorization": "Bearer nonsense"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
    for answer in (preflight, read, refused):  # no cookies, so never credentials mode
        assert "access-control-allow-credentials" not in answer.headers
    assert "access-control-allow-origin" not in client.get(f"/Patient/{pid}").headers  # servers send no Origin


def test_cors_origins_can_be_named_or_turned_off(settings: Settings) -> None:
    with app_with(settings, cors_origins="https://app.example.vn, http://localhost:3000") as named:
        for origin in ("https://app.example.vn", "http://localhost:3000"):
            answer = named.get("/metadata", headers={"Origin": origin})
            assert answer.headers["access-control-allow-origin"] == origin
            assert "Origin" in answer.headers["vary"]
        assert "access-control-allow-origin" not in named.get("/metadata", headers={"Origin": "https://evil.example"}
                                                              ).headers
        preflight = named.options("/metadata", headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in preflight.headers
    with app_with(settings, cors_origins="none") as off:
        assert "access-control-allow-origin" not in off.get("/metadata", headers={"Origin": "https://a.example"}
                                                            ).headers
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        Settings.from_env({"FHIR_HUB_CORS_ORIGINS": "app.example.vn"})


# ------------------------------------------------------------------------------------------- gzip
def test_answers_are_gzipped_for_clients_that_accept_it_above_a_small_size(client: TestClient) -> None:
    for _ in range(5):
        patient(client)
    big = client.get("/Patient?_count=5", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip" and "Accept-Encoding" in big.headers["vary"]
    assert int(big.headers["content-length"]) < len(big.content)  # httpx inflated it
    assert big.json()["total"] == 5
    plain = client.get("/Patient?_count=5", headers=PLAIN)
    assert "content-encoding" not in plain.headers and plain.json() == {**big.json(), "id": plain.json()["id"],
                                                                        "meta": plain.json()["meta"]}
    assert "content-encoding" not in client.get("/Patient?_count=5", headers={"Accept-Encoding": "gzip;q=0"}).headers
    tiny = client.get("/Patient/never-created", headers={"Accept-Encoding": "gzip"})
    assert len(tiny.content) < GZIP_MIN_BYTES and "content-encoding" not in tiny.headers


def gzipped(body: bytes) -> dict[str, Any]:
    return {"content": gzip.compress(body), "headers": {**FHIR, "Content-Encoding": "gzip"}}


def test_a_gzipped_body_is_read(client: TestClient) -> None:
    body = orjson.dumps({"resourceType": "Patient", "name": [{"family": "Lê", "given": ["Văn", "Tám"]}]})
    created = client.post("/Patient", **gzipped(body))
    assert created.status_code == 201, created.text
    assert created.json()["name"][0]["family"] == "Lê"
    two_members = gzip.compress(body[:20]) + gzip.compress(body[20:])  # concatenated gzip files are one body
    assert client.post("/Patient", content=two_members, headers={**FHIR, "Content-Encoding": "gzip"}
                       ).status_code == 201


def test_the_body_limit_counts_the_inflated_bytes(settings: Settings) -> None:
    """A zip bomb (100 MB of JSON in ~100 KB) against a 1 MB limit: 413, having held little of it."""
    bomb = gzip.compress(b'{"resourceType": "Patient", "text": "' + b"a" * 100_000_000 + b'"}')
    assert len(bomb) < 1_000_000
    with app_with(settings, max_body_bytes=1_000_000) as client:
        tracemalloc.start()
        try:
            answer = client.post("/Patient", content=bomb, headers={**FHIR, "Content-Encoding": "gzip"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        body = assert_outcome(answer, 413, "too-long")
        assert "after gzip decompression" in body["issue"][0]["diagnostics"]
        assert peak < 20_000_000, peak
        just_under = orjson.dumps({"resourceType": "Patient", "name": [{"text": "b" * 900_000}]})
        assert client.post("/Patient", **gzipped(just_under)).status_code == 201


@pytest.mark.parametrize(("content", "encoding", "status"), [
    (b"not gzip at all", "gzip", 400),
    (gzip.compress(b'{"resourceType": "Patient"}')[:-12], "gzip", 400),  # truncated
    (b'{"resourceType": "Patient"}', "br", 415),
])
def test_a_body_that_cannot_be_decoded_is_refused(client: TestClient, content: bytes, encoding: str,
                                                  status: int) -> None:
    answer = client.post("/Patient", content=content, headers={**FHIR, "Content-Encoding": encoding})
    assert_outcome(answer, status)
    assert client.get("/Patient", params={"_summary": "count"}).json()["total"] == 0


# ------------------------------------------------------------------------------------ byte-order mark
def test_a_byte_order_mark_before_a_json_body_is_skipped(client: TestClient) -> None:
    created = client.post("/Patient", content=b"\xef\xbb\xbf" + orjson.dumps({"resourceType": "Patient"}),
                          headers=FHIR)
    assert created.status_code == 201, created.text
    patched = client.patch(f"/Patient/{created.json()['id']}", content=b'\xef\xbb\xbf[{"op": "add", "path": '
                           b'"/active", "value": true}]', headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200 and patched.json()["active"] is True
