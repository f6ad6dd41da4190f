"""A read by id skips the router (``fhir_hub/api/direct_read.py``) and answers exactly as the router would.

Two apps over one database, one with the direct layer and one without it, get the same requests; their
answers must be the same bytes, status and headers (``date`` aside). The layer's choice of requests is
checked against Starlette's own routing over every route the app mounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Match

from fhir_hub.api import read as read_api
from fhir_hub.api.direct_read import DirectRead, read_route, read_target
from fhir_hub.config import Settings
from fhir_hub.fhir.registry import resource_types
from fhir_hub.main import create_app
from tests.conftest import as_, auth, token_for


def _without_direct_read(settings: Settings) -> Any:
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not DirectRead]
    return app


@pytest.fixture
def pair(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as direct, \
            TestClient(_without_direct_read(settings), raise_server_exceptions=False) as routed:
        yield direct, routed


def _same(direct: TestClient, routed: TestClient, method: str, url: str, headers: dict[str, str]) -> Any:
    one = direct.request(method, url, headers=headers)
    other = routed.request(method, url, headers=headers)
    assert one.status_code == other.status_code, (url, headers, one.text, other.text)
    if b'"Bundle"' in one.content:  # the router's own answers (a history): ids and instants of their own
        assert _bundle(one.json()) == _bundle(other.json()), url
        return one
    assert one.content == other.content, (url, headers)
    assert {k: v for k, v in one.headers.items() if k != "date"} == \
        {k: v for k, v in other.headers.items() if k != "date"}, (url, headers)
    return one


def _bundle(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "meta", "timestamp")}


def test_reads_answer_as_the_router_would(pair: tuple[TestClient, TestClient], settings: Settings) -> None:
    direct, routed = pair
    system = as_(settings)
    patient = direct.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Nguyễn"}],
                                            "gender": "female", "birthDate": "1950-03-04"}, headers=system).json()
    gone = direct.post("/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=system).json()
    assert direct.delete(f"/Patient/{gone['id']}", headers=system).status_code == 204
    pid = patient["id"]
    etag = direct.get(f"/Patient/{pid}", headers=system).headers["etag"]
    resident = as_(settings, "resident", patient=pid)
    stranger = as_(settings, "resident", patient="someone-else")
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("GET", f"/Patient/{pid}", system),
        ("HEAD", f"/Patient/{pid}", system),
        ("GET", f"/Patient/{pid}?_summary=true", system),
        ("GET", f"/Patient/{pid}?_elements=gender", system),
        ("GET", f"/Patient/{pid}?_summary=count", system),
        ("GET", f"/Patient/{pid}?_format=xml", system),
        ("GET", f"/Patient/{pid}?_pretty=true&unknown=1", system),
        ("GET", f"/Patient/{pid}?_pretty=maybe", system),
        ("GET", f"/Patient/{pid}", {**system, "If-None-Match": etag}),
        ("GET", f"/Patient/{pid}", {**system, "Accept-Encoding": "gzip"}),
        ("GET", f"/Patient/{pid}", {**system, "Origin": "https://app.example"}),
        ("GET", f"/Patient/{pid}", {**system, "Accept": "text/plain"}),
        ("GET", f"/Patient/{pid}", resident),
        ("GET", f"/Patient/{pid}", stranger),
        ("GET", f"/Patient/{pid}", {}),
        ("GET", f"/Patient/{pid}", auth("not-a-token")),
        ("GET", f"/Patient/{pid}", as_(settings, "clinician", facility="79002", purpose="ETREAT")),
        ("GET", f"/Observation/{pid}", as_(settings, "resident", patient=pid)),
        ("GET", f"/Patient/{gone['id']}", system),
        ("GET", "/Patient/no-such-id", system),
        ("GET", "/Patient/$summary", system),
        ("GET", "/Patient/_history", system),
        ("GET", "/Patient/$lastn", system),
        ("GET", "/StructureDefinition/ips-composition", system),
        ("GET", "/Flag/x", as_(settings, "system", facility="79001", scope="system/Patient.rs")),
    ]
    for method, url, headers in cases:
        _same(direct, routed, method, url, headers)


def test_the_router_is_not_asked_for_a_read_by_id(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this, the comparison above would pass with a layer that took nothing."""
    app = create_app(settings)
    route, _ = read_route(app.routes, read_api.read)
    assert route is not None

    async def refuse(*_args: Any) -> None:
        raise AssertionError("the router handled a read by id")

    monkeypatch.setattr(route, "handle", refuse)
    headers = auth(token_for(settings))
    with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
        created = client.post("/Patient", json={"resourceType": "Patient", "gender": "other"}).json()
        answer = client.get(f"/Patient/{created['id']}")
        assert answer.status_code == 200 and answer.json()["id"] == created["id"]
        assert client.get("/Patient/unknown-one").status_code == 404
        assert client.get(f"/Patient/{created['id']}/_history/1").status_code == 200  # vread: another route


def _router_picks(app: Any, path: str) -> Any:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b""}
    for route in app.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def test_it_takes_only_paths_the_router_gives_the_read_route(settings: Settings) -> None:
    """Every path it takes, the router would give to the read route (which it leaves the others it gets:
    ``/Patient/$lastn`` is no id, and the route's own check answers it)."""
    app = create_app(settings)
    route, shadowed = read_route(app.routes, read_api.read)
    assert route is not None
    ids = ["abc", "a.b-1", "metadata", "_history", "$summary", "$everything", "ips-composition", "smart-configuration",
           "index.html", "x" * 64, "x" * 65]
    firsts = [*resource_types(), "metadata", ".well-known", "portal", "docs", "_history"]
    for template in (getattr(r, "path", "") for r in app.routes):
        segments = template.split("/")[1:]
        firsts += [s for s in segments[:1] if not s.startswith("{")]
        ids += [s for s in segments[1:2] if not s.startswith("{")]
    checked = 0
    for first in set(firsts):
        for rid in set(ids):
            path = f"/{first}/{rid}"
            takes = read_target(path, shadowed) is not None
            assert not takes or _router_picks(app, path) is route, path
            checked += takes
    assert checked > 100

