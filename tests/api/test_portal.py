"""The resident page as served (issue 19): public, self-contained, not a FHIR interaction; the browser test
(``tests/portal/``) drives it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_hub.cli import main
from tests.conftest import assert_outcome, auth

FILES = ("/portal", "/portal/portal.js", "/portal/portal.css")


def test_the_page_and_its_files_are_served_to_anyone_with_a_strict_policy(app_client: TestClient) -> None:
    page = app_client.get("/portal")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<html lang="vi">' in page.text and '<meta name="viewport"' in page.text
    for path in FILES:
        answer = app_client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "http" not in policy
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert_outcome(app_client.get("/portal/index.py"), 404)


def test_nothing_is_loaded_from_another_origin(app_client: TestClient) -> None:
    """No CDN, no web font: every URL the page names is its own (the FHIR system URIs in the script are
    identifiers, never fetched)."""
    page = app_client.get("/portal").text
    assert all(not re.match(r"[a-z]+:|//", ref) for ref in re.findall(r'(?:src|href)="([^"]*)"', page))
    assert "url(" not in app_client.get("/portal/portal.css").text and "@import" not in app_client.get(
        "/portal/portal.css").text
    script = app_client.get("/portal/portal.js").text
    assert re.findall(r"fetch\(([^,]+),", script) == ["base + path"]
    assert "innerHTML" not in script  # what the API answers is shown as text, never parsed as markup


def test_the_page_is_not_a_fhir_interaction(app_client: TestClient) -> None:
    assert not [p for p in app_client.app.openapi()["paths"] if p.startswith("/portal")]  # type: ignore[attr-defined]
    assert "portal" not in app_client.get("/metadata").text


def test_the_cli_prints_a_link_whose_fragment_holds_a_token_the_hub_accepts(
        app_client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = app_client.app.state.hub.settings  # type: ignore[attr-defined]
    monkeypatch.setenv("FHIR_HUB_PORT", "8099")
    assert main(["token", "--role", "resident", "--patient", "pat-an", "--portal-link",
                 "--data-dir", str(settings.data_dir)]) == 0
    link = capsys.readouterr().out.strip()
    address, _, token = link.partition("#token=")
    assert address == "http://127.0.0.1:8099/portal"
    assert app_client.get("/Patient/$access-log", headers=auth(token)).status_code == 200
