"""Derive the compact validation data the hub ships from the official R4 (4.0.1) definitions.

The four source files (``profiles-resources.json``, ``profiles-types.json``, ``valuesets.json``,
``v3-codesystems.json``) are ~54 MB; validation needs a few per cent of them. This script keeps what the
base checks use and writes two files beside itself, sorted so that a rerun on the same input is
byte-identical (see SOURCE.md for where the input comes from):

- ``elements.json``: per resource and complex datatype, per element path, ``[min, max, types,
  required value set or null, constraint keys]``, plus ``contentReference`` targets and every constraint
  by key (severity, expression, human text).
- ``required-valuesets.json``: per value set some element binds *required*, its codes by system, for the
  ones that can be enumerated from the shipped data alone (explicit concept lists, whole code systems
  shipped complete, and value sets made of those). The others are listed with the reason they cannot be
  enumerated, so the validator skips them knowingly instead of guessing.

Usage: ``python profiles/fhir-r4/extract.py DIR`` with DIR the package's ``dist/fhir/r4`` folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
_FHIRPATH_TYPE = "http://hl7.org/fhirpath/System."


def _entries(folder: Path, name: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in json.loads((folder / name).read_text(encoding="utf-8"))["entry"]]


def _type_codes(element: dict[str, Any]) -> list[str]:
    codes = []
    for t in element.get("type", []):
        code = t["code"]
        if code.startswith(_FHIRPATH_TYPE):  # Resource.id and the like: a primitive with no FHIR type name
            code = "string"
        codes.append(code)
    return codes


def _strip_version(url: str) -> str:
    return url.split("|", 1)[0]


def _ambiguous_keys(definitions: list[dict[str, Any]]) -> set[str]:
    """Constraint keys that name different expressions in different types (``inv-1`` of Task and of
    others): those are kept per type, as ``key@Type``; every other key (``ele-1``, ``dom-3``...) once."""
    expressions: dict[str, set[str]] = {}
    for sd in definitions:
        for element in sd.get("snapshot", {}).get("element", []):
            for c in element.get("constraint", []):
                expressions.setdefault(c["key"], set()).add(c.get("expression", ""))
    return {key for key, found in expressions.items() if len(found) > 1}


def elements(definitions: list[dict[str, Any]]) -> tuple[dict[str, Any], set[str]]:
    """Per type, its elements; and the value sets bound ``required``."""
    types: dict[str, Any] = {}
    constraints: dict[str, dict[str, str]] = {}
    required: set[str] = set()
    ambiguous = _ambiguous_keys(definitions)
    for sd in definitions:
        paths: dict[str, list[Any]] = {}
        references: dict[str, str] = {}
        for element in sd["snapshot"]["element"]:
            path = element["path"]
            if "contentReference" in element:
                references[path] = element["contentReference"].lstrip("#")
            binding = element.get("binding", {})
            value_set = None
            if binding.get("strength") == "required" and "valueSet" in binding:
                value_set = _strip_version(binding["valueSet"])
                required.add(value_set)
            keys = []
            for c in element.get("constraint", []):
                if "expression" not in c:
                    continue
                key = c["key"] if c["key"] not in ambiguous else f"{c['key']}@{sd['type']}"
                constraints[key] = {"key": c["key"], "severity": c["severity"], "expression": c["expression"],
                                    "human": c["human"]}
                keys.append(key)
            paths[path] = [element.get("min", 0), element.get("max", "*"), _type_codes(element), value_set,
                           sorted(keys)]
        types[sd["type"]] = {"kind": sd["kind"], "abstract": sd.get("abstract", False), "elements": paths,
                             **({"references": references} if references else {})}
    return {"types": dict(sorted(types.items())), "constraints": dict(sorted(constraints.items()))}, required


def _concepts(concepts: list[dict[str, Any]]) -> list[str]:
    codes: list[str] = []
    for c in concepts:
        codes.append(c["code"])
        codes += _concepts(c.get("concept", []))
    return codes


class _Expander:
    """Enumerates a value set from the shipped value sets and code systems, or says why it cannot."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}
        self.code_systems = {r["url"]: r for r in resources if r["resourceType"] == "CodeSystem"}

    def expand(self, url: str, seen: frozenset[str] = frozenset()) -> dict[str, set[str]] | str:
        if url in seen:
            return f"{url} includes itself"
        vs = self.value_sets.get(url)
        if vs is None:
            return f"the value set {url} is not shipped"
        compose = vs.get("compose")
        if not compose:
            return f"{url} has no compose"
        codes: dict[str, set[str]] = {}
        for include in compose.get("include", []):
            part = self._part(include, seen | {url})
            if isinstance(part, str):
                return part
            for system, found in part.items():
                codes.setdefault(system, set()).update(found)
        for exclude in compose.get("exclude", []):
            part = self._part(exclude, seen | {url})
            if isinstance(part, str):
                return part
            for system, found in part.items():
                codes.get(system, set()).difference_update(found)
        return codes

    def _part(self, include: dict[str, Any], seen: frozenset[str]) -> dict[str, set[str]] | str:
        if "filter" in include:
            return f"a filter on {include.get('system')} needs a terminology server"
        parts: list[dict[str, set[str]]] = []
        for url in include.get("valueSet", []):
            found = self.expand(_strip_version(url), seen)
            if isinstance(found, str):
                return found
            parts.append(found)
        system = include.get("system")
        if system is not None:
            if "concept" in include:
                parts.append({system: {c["code"] for c in include["concept"]}})
            else:
                cs = self.code_systems.get(system)
                if cs is None:
                    return f"the code system {system} is not shipped"
                if cs.get("content") != "complete":
                    return f"the code system {system} is shipped {cs.get('content')}, not complete"
                parts.append({system: set(_concepts(cs.get("concept", [])))})
        if not parts:
            return "an include with neither system nor value set"
        merged = parts[0]
        for other in parts[1:]:  # an include naming a system and value sets is their intersection
            merged = {s: merged[s] & codes for s, codes in other.items() if s in merged}
        return merged


def main(folder: Path) -> None:
    definitions = _entries(folder, "profiles-resources.json") + _entries(folder, "profiles-types.json")
    extract, required = elements([d for d in definitions if d["resourceType"] == "StructureDefinition"
                                  and d.get("derivation") != "constraint"
                                  and d["kind"] not in ("logical", "primitive-type")
                                  # the package adds R4B's SubscriptionStatus, which R4 lacks
                                  and d.get("fhirVersion") == "4.0.1"])
    expander = _Expander(_entries(folder, "valuesets.json") + _entries(folder, "v3-codesystems.json"))
    enumerable: dict[str, dict[str, list[str]]] = {}
    skipped: dict[str, str] = {}
    for url in sorted(required):
        found = expander.expand(url)
        if isinstance(found, str):
            skipped[url] = found
        else:
            enumerable[url] = {system: sorted(codes) for system, codes in sorted(found.items())}
    (HERE / "elements.json").write_text(json.dumps(extract, separators=(",", ":"), ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    (HERE / "required-valuesets.json").write_text(
        json.dumps({"valueSets": enumerable, "notEnumerable": skipped}, indent=0, ensure_ascii=False) + "\n",
        encoding="utf-8")
    print(f"{len(extract['types'])} types, {len(extract['constraints'])} constraints, "
          f"{len(enumerable)} required value sets enumerated, {len(skipped)} not enumerable")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
