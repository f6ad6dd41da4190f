"""The official R4 definitions the hub runs on (and its own few), loaded once from the JSON files beside this module."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


def load_definition(name: str, folder: str = "fhir-r4") -> dict[str, Any]:
    """One JSON file of ``profiles/<folder>``, parsed (callers cache what they derive from it)."""
    data: dict[str, Any] = json.loads((resources.files("profiles") / folder / name).read_text(encoding="utf-8"))
    return data


def definition_files(folder: str, prefix: str) -> list[dict[str, Any]]:
    """Every ``profiles/<folder>/<prefix>*.json``, parsed, in file-name order."""
    found = (resources.files("profiles") / folder).iterdir()
    return [json.loads(f.read_text(encoding="utf-8")) for f in sorted(found, key=lambda f: f.name)
            if f.name.startswith(prefix) and f.name.endswith(".json")]


@cache
def search_parameters() -> dict[tuple[str, str], dict[str, Any]]:
    """Every R4 SearchParameter, then the hub's own (``hub/search-parameters.json``: the address's
    administrative units), by (resource type it applies to, code)."""
    params: dict[tuple[str, str], dict[str, Any]] = {}
    official, hub = load_definition("search-parameters.json"), load_definition("search-parameters.json", "hub")
    for entry in [*official["entry"], *hub["entry"]]:
        resource = entry["resource"]
        for base in resource.get("base", []):
            params[(base, resource["code"])] = resource
    return params


@cache
def search_parameters_by_url() -> dict[str, dict[str, Any]]:
    """The same definitions by canonical URL (what ``derivedFrom`` and a CapabilityStatement name)."""
    return {p["url"]: p for p in search_parameters().values()}


@cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Resource types in the Patient compartment, with the search parameters that put them there."""
    definition = load_definition("compartmentdefinition-patient.json")
    return {item["code"]: tuple(item["param"]) for item in definition["resource"] if item.get("param")}
