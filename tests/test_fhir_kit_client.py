"""fhir-kit-client (npm), unchanged, against the running server: the conventions of issue 21 as a Node client
meets them (a conditional create by header and by URL, a history total, ``_elements`` on a read, HEAD,
gzip and CORS). Skipped, saying why, without Node and npm or when the package cannot be installed (no
network): it is installed once into a cache directory outside the repository, never committed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fhir_hub.config import Settings
from tests.conftest import token_for

pytestmark = pytest.mark.server

PACKAGE = "fhir-kit-client@2.0.3"
SCRIPT = Path(__file__).parent / "clients" / "fhir_kit_client.mjs"
CACHE = Path(os.environ.get("FHIR_HUB_NODE_CACHE", Path.home() / ".cache" / "fhir-hub-tests")) / PACKAGE


def installed_module() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("fhir-kit-client needs Node.js and npm, not found on PATH")
    module = CACHE / "node_modules" / "fhir-kit-client"
    if not (module / "dist" / "index.js").exists():
        try:
            subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--silent",
                            "--fetch-retries=0", "--fetch-timeout=15000", PACKAGE],
                           check=True, timeout=180, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"could not install {PACKAGE} with npm (offline?): {exc}")
    return module


def test_fhir_kit_client_meets_the_conventions(live_server: str, settings: Settings) -> None:
    module = installed_module()
    run = subprocess.run([shutil.which("node") or "node", str(SCRIPT), str(module), live_server, token_for(settings)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["conditional"] == {"first": 201, "second": 200, "same": True}
    assert (seen["historyTotal"], seen["historyEntries"]) == (2, 2)
    assert seen["subsetKeys"] == ["birthDate", "id", "meta", "resourceType"] and seen["subsetTags"] == ["SUBSETTED"]
    head = seen["head"]
    assert head["status"] == 200 and head["etag"] == head["readEtag"] == 'W/"2"'
    assert head["length"] == head["readLength"]
    assert seen["search"] == {"entries": 12, "encoding": "gzip", "cors": "*"}
