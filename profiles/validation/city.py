"""The city's own profiles and what goes with them, read once from ``profiles/city``: the StructureDefinitions
(``StructureDefinition-*.json``), the value sets they bind to (``ValueSet-*.json``, enumerated codes only),
the identifier systems accepted as aliases of the hub's (``systems.json``), and what a write does with a
resource that breaks a profile it claims (``enforcement.json``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from profiles.definitions import definition_files
from profiles.validation.definitions import ValueSet
from profiles.validation.structure import Profile, parse

HUB_PROFILE_BASE = "https://fhir.hub.hcmc.vn/StructureDefinition/"
REJECT, WARN = "reject", "warn"


def _files(prefix: str) -> list[dict[str, Any]]:
    return definition_files("city", prefix)


def _data(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((resources.files("profiles") / "city" / name).read_text(encoding="utf-8"))
    return found


@cache
def structure_definitions() -> tuple[dict[str, Any], ...]:
    """The StructureDefinitions as shipped (served read-only by the API)."""
    return tuple(_files("StructureDefinition-"))


@cache
def profiles() -> dict[str, Profile]:
    """By canonical URL."""
    parsed = (parse(sd) for sd in structure_definitions())
    return {p.url: p for p in parsed}


def profile(url: str) -> Profile | None:
    """A city profile by canonical URL, a version (``|0.1.0``) ignored."""
    return profiles().get(url.split("|", 1)[0])


@cache
def value_set_resources() -> tuple[dict[str, Any], ...]:
    """The value sets as shipped (served read-only by the API)."""
    return tuple(_files("ValueSet-"))


@cache
def value_sets() -> dict[str, ValueSet]:
    """The city's value sets by URL; one defined by a filter or another value set is refused at load time
    (its codes would otherwise look like an empty set, refusing everything)."""
    found = {}
    for vs in value_set_resources():
        includes = vs["compose"]["include"]
        if "exclude" in vs["compose"] or any("concept" not in inc or inc.keys() - {"system", "version", "concept"}
                                             for inc in includes):
            raise ValueError(f"{vs['url']}: only value sets listing their codes (include.concept) are supported")
        codes = {inc["system"]: frozenset(c["code"] for c in inc["concept"]) for inc in includes}
        found[vs["url"]] = ValueSet(vs["url"], codes, frozenset().union(*codes.values()))
    return found


@cache
def _aliases() -> dict[str, frozenset[str]]:
    return {system: frozenset(alias) for system, alias in _data("systems.json")["aliases"].items()}


def same_value(expected: Any, actual: Any) -> bool:
    """``actual`` is ``expected`` or one of its aliases (a VN Core identifier system for the hub's)."""
    return bool(actual == expected or (isinstance(actual, str) and isinstance(expected, str)
                                       and actual in _aliases().get(expected, ())))


@cache
def _enforcement() -> dict[str, str]:
    found: dict[str, str] = _data("enforcement.json")["profiles"]
    bad = {url: mode for url, mode in found.items() if mode not in (REJECT, WARN)}
    if bad:
        raise ValueError(f"profiles/city/enforcement.json: modes must be {REJECT} or {WARN}: {bad}")
    return found


def enforcement(url: str) -> str:
    """``reject`` (the default) or ``warn``."""
    return _enforcement().get(url.split("|", 1)[0], REJECT)


def claimed(resource: dict[str, Any], requested: str | None = None) -> list[Profile]:
    """The city profiles that apply to ``resource``: those its ``meta.profile`` names and the one a caller
    asks for (``$validate``'s ``profile``), once each, of its own type (a claim of another type's profile is
    the claims check's warning, ``claims.py``)."""
    meta = resource.get("meta")
    urls = meta.get("profile") if isinstance(meta, dict) else None
    wanted = [u for u in urls if isinstance(u, str)] if isinstance(urls, list) else []
    if requested is not None:
        wanted.append(requested)
    found = {p.url: p for p in (profile(u) for u in wanted) if p is not None and p.type == resource.get("resourceType")}
    return list(found.values())


@cache
def _by_type() -> dict[str, Profile]:
    """The city's profile of each type it profiles (one each: the adapters claim it where it is met)."""
    found: dict[str, Profile] = {}
    for p in profiles().values():
        if p.type in found:
            raise ValueError(f"two city profiles for {p.type}: {found[p.type].url}, {p.url}")
        found[p.type] = p
    return found


def profile_for_type(rtype: str) -> Profile | None:
    return _by_type().get(rtype)
