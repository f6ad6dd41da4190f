"""capabilities (FHIR R4 http.html#capabilities): ``GET /metadata``.

The CapabilityStatement is generated from the operations the app has mounted (each carries an
``x-fhir-interaction`` tag, read back from the app's OpenAPI document), from the resource types the hub
serves (``fhir/registry.py``: R4's) and from their search parameters, so it can never claim an interaction,
a parameter or an ``_include`` the server lacks or miss one it has.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, FastAPI, Response

from fhir_hub import __version__
from fhir_hub.api.context import PublicFhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import INTERACTION_KEY, fhir_route
from fhir_hub.api.smart import oauth_uris
from fhir_hub.audit import AUDIT_TYPE
from fhir_hub.auth.policy import HUB_ONLY_TYPES
from fhir_hub.fhir.instant import system_clock, to_instant
from fhir_hub.fhir.jsonio import dumps
from fhir_hub.fhir.registry import resource_types
from fhir_hub.search.params import params_for
from profiles.catalogue import shipped
from profiles.validation.city import profile_for_type

router = APIRouter()

FHIR_VERSION = "4.0.1"
_TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                      "create", "search-type")
_SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
_STARTED = to_instant(system_clock())[:10]
_RESOURCE_PARAM = "http://hl7.org/fhir/SearchParameter/Resource-"
_ID_DEFINITION = _RESOURCE_PARAM + "id"
_WRITES = frozenset({"create", "update", "patch", "delete"})
_WRITE_FLAGS = frozenset({"conditionalCreate", "conditionalUpdate", "conditionalDelete", "updateCreate"})
# tag keys that are not CapabilityStatement flags: an operation, the type it is on, the permission it needs
PATIENT_COMPARTMENT = "http://hl7.org/fhir/CompartmentDefinition/patient"
_NOT_FLAGS = frozenset({"code", "level", "interactions", "operation", "resource", "permission"})
_EVERY_TYPE = "*"  # an operation tag's ``resource`` for one every type has ($validate)
_LISTED = 10  # shipped conformance resources named in their type's documentation
_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


@router.get("/metadata", **fhir_route("capabilities", "system", summary="The server's CapabilityStatement"))
async def metadata(ctx: PublicFhir) -> Response:
    body = capability_statement_json(ctx.request.app, ctx.base_url, oauth_uris(ctx),
                                     cors=bool(ctx.hub.settings.cors_origin_list))
    return fhir_response(ctx, body)


def capability_statement_json(app: FastAPI, base_url: str, oauth: tuple[tuple[str, str], ...], *,
                              cors: bool) -> bytes:
    """``oauth``: the oauth-uris extension's (name, URI) pairs (``smart.oauth_uris``)."""
    return dumps(_statement(tuple(_tags(app)), base_url, oauth, cors))


def _tags(app: FastAPI) -> list[dict[str, Any]]:
    """The interaction tags of every mounted operation, read from the app's own OpenAPI document."""
    return [op[INTERACTION_KEY] for path in app.openapi()["paths"].values() for op in path.values()
            if isinstance(op, dict) and INTERACTION_KEY in op]


@cache
def _search_params(rtype: str) -> list[dict[str, str]]:
    """What a search of ``rtype`` can use: the audit log answers AuditEvent searches by _id and patient."""
    if rtype == AUDIT_TYPE:
        return [{"name": "_id", "definition": _ID_DEFINITION, "type": "token"},
                {"name": "patient", "definition": "http://hl7.org/fhir/SearchParameter/AuditEvent-patient",
                 "type": "reference"}]
    found = [{"name": "_id", "definition": _ID_DEFINITION, "type": "token"},
             {"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
              "type": "date"}]
    found += [{"name": code, "definition": param.url, "type": param.type}
              for code, param in sorted(params_for(rtype).items()) if code not in ("_id", "_lastUpdated")]
    return found


@cache
def _includes() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``searchInclude`` and ``searchRevInclude`` of every type: ``Source:param`` for each reference
    parameter (what ``_include``/``_revinclude`` accept), listed under the source type, and under every type
    it may point to (a parameter naming no target type, under all). AuditEvents, kept in the audit log and
    searched by ``_id`` and ``patient`` only, have none."""
    types = [t for t in resource_types() if t != AUDIT_TYPE]
    include: dict[str, list[str]] = {t: [] for t in types}
    revinclude: dict[str, list[str]] = {t: [] for t in types}
    for source in types:
        for code, param in sorted(params_for(source).items()):
            if param.type != "reference":
                continue
            include[source].append(f"{source}:{code}")
            for target in (param.targets or types):
                if target in revinclude:
                    revinclude[target].append(f"{source}:{code}")
    return include, revinclude


@cache
def _system_search_params() -> list[dict[str, str]]:
    """Across types: the parameters every type has (``Resource``'s), and ``_type``."""
    common = [p for p in _search_params("Patient") if p["definition"].startswith(_RESOURCE_PARAM)]
    return [*common, {"name": "_type", "type": "token", "documentation": "Resource types to search, comma separated"}]


def _statement(tags: tuple[dict[str, Any], ...], base_url: str, oauth: tuple[tuple[str, str], ...],
               cors: bool) -> dict[str, Any]:
    codes = {t["code"] for t in tags} | {c for t in tags for c in t.get("interactions", ())}
    flags: dict[str, Any] = {}
    for tag in tags:
        flags.update({k: v for k, v in tag.items() if k not in _NOT_FLAGS})
    operations = [t["operation"] for t in tags if "operation" in t and "resource" not in t]
    type_operations: dict[str, list[dict[str, str]]] = {}
    for tag in tags:  # an operation at type and instance level (Patient/$access-log) is listed once
        if "operation" in tag and "resource" in tag:
            for rtype in resource_types() if tag["resource"] == _EVERY_TYPE else (tag["resource"],):
                listed = type_operations.setdefault(rtype, [])
                if tag["operation"] not in listed:
                    listed.append(tag["operation"])
    resources = []
    for rtype in resource_types():
        hub_only = rtype in HUB_ONLY_TYPES  # readable, never written through the API
        entry: dict[str, Any] = {
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
            "interaction": [{"code": c} for c in _TYPE_INTERACTIONS if c in codes and not (hub_only and c in _WRITES)],
        }
        city_profile = profile_for_type(rtype)
        if city_profile is not None:  # claimed in meta.profile, a resource is validated against it (profiles/city)
            entry["supportedProfile"] = [city_profile.url]
        served = shipped(rtype)
        if served:  # fhir_hub/api/conformance.py
            entry["documentation"] = (f"Also the hub's own {len(served)} {rtype} resources (what its validator "
                                      "enforces), read-only from its shipped definitions, by id or by url: "
                                      + ", ".join(r["url"] for r in served[:_LISTED])
                                      + (", ..." if len(served) > _LISTED else ""))
        entry.update({k: v for k, v in flags.items() if not (hub_only and k in _WRITE_FLAGS)})
        include, revinclude = (by_type.get(rtype) for by_type in _includes())
        if include:
            entry["searchInclude"] = include
        if revinclude:
            entry["searchRevInclude"] = revinclude
        entry["searchParam"] = _search_params(rtype)
        if rtype in type_operations:
            entry["operation"] = sorted(type_operations[rtype], key=lambda o: o["name"])
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _STARTED,
        "publisher": "Ho Chi Minh City health interoperability hub",
        "kind": "instance",
        "software": {"name": "fhir-hub", "version": __version__},
        "implementation": {
            "description": "FHIR R4 interoperability hub (structure validated with the R4B 4.3.0 models)",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json", "application/json"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{"url": _OAUTH_URIS,
                               "extension": [{"url": name, "valueUri": uri} for name, uri in oauth]}],
                "cors": cors,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                         "code": "SMART-on-FHIR"}]}],
                "description": "Every endpoint but /metadata, /.well-known/smart-configuration and the token "
                               "endpoint (SMART Backend Services: client credentials with a private_key_jwt "
                               "assertion) needs a bearer token (JWT, RS256 or ES256) with SMART v1/v2 scopes: "
                               "system/ for hospital "
                               "systems, user/ for clinicians, patient/ for residents (their own compartment "
                               "only). The facility claim sets the source of what a caller writes.",
            },
            "resource": resources,
            "interaction": [{"code": c} for c in _SYSTEM_INTERACTIONS if c in codes],
            # R4 declares compartment searches by the compartments supported, not as an interaction code
            **({"compartment": [PATIENT_COMPARTMENT]} if "search-compartment" in codes else {}),
            **({"searchParam": _system_search_params()} if "search-system" in codes else {}),
            **({"operation": operations} if operations else {}),
        }],
    }
