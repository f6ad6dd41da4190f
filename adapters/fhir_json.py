"""FHIR R4 JSON from tertiary hospitals: a Bundle, a single resource, or NDJSON (one resource per line).

Read as strictly as a REST request body (``strict_json``: a key twice, an escaped control character or a
number a double cannot hold rejects the record, naming the element; decimals kept as written), then passed
through the same normalisation as every other format (names in NFC, identifier systems to the
hub's URIs, Vietnamese phone numbers to +84, source tags), then:
- a ``transaction`` Bundle stays one record, its entries' requests as sent (the sender chose them);
- any other Bundle (``batch``, ``collection``, ``document``...) becomes one transaction record;
- a resource alone, or each line of NDJSON (a Bulk Data export), is one record.
A resource that arrives with the sender's id keeps it as an identifier (``{hub}/sid/source-id/{facility}``
= ``Type/id``) and is written as a conditional update on it (``normalize.write_request``): ingesting the same
file twice creates nothing new, a changed resource replaces the earlier version. The hub assigns its own
ids, so a reference ``Type/id`` to another resource of the same Bundle is pointed at that entry, and one to
a resource sent earlier (another NDJSON line or file) becomes a conditional reference on its source-id
identifier. Send the files that others refer to
first (``fhir-hub ingest`` orders Organization, Location, Practitioner and Patient files before the rest).
"""

from __future__ import annotations

import re
import uuid
from functools import cache
from typing import Any

import orjson

from adapters.base import Mapping, Record, Source
from adapters.normalize import (
    HUB,
    canonical_system,
    conditional_reference,
    nfc,
    person_name,
    phone,
    tag,
    write_request,
)
from fhir_hub.bundles.references import references_in, rewrite
from fhir_hub.fhir.registry import model_class
from fhir_hub.fhir.strict_json import JsonRefused, strict_loads

_RELATIVE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


class FhirJsonAdapter:
    format = "fhir"
    media_types: tuple[str, ...] = ("application/fhir+json", "application/json", "application/fhir+ndjson",
                                    "application/x-ndjson", "application/ndjson")

    def detect(self, payload: bytes, filename: str | None = None) -> bool:
        head = payload[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
        return head.startswith(b"{") and b'"resourceType"' in payload[:4096]

    def map(self, payload: bytes, source: Source, *, filename: str | None = None) -> Mapping:
        mapping = Mapping(self.format, facility=source.facility)
        text = payload.removeprefix(b"\xef\xbb\xbf")
        try:
            documents: list[tuple[int | None, Any]] = [(None, strict_loads(text))]
        except JsonRefused as exc:  # one JSON document, refused as the REST API refuses a body
            mapping.reject(filename or "payload", exc.path, str(exc))
            return mapping
        except orjson.JSONDecodeError:
            documents = list(_ndjson_lines(text, mapping))
        for line, document in documents:
            key = f"line {line}" if line is not None else (filename or "payload")
            if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
                mapping.reject(key, "resourceType", "not a FHIR resource (a JSON object with resourceType)")
                continue
            bundle = _record_bundle(document, source)
            if bundle is None:
                mapping.reject(key, "Bundle.entry", "a Bundle without entries")
                continue
            mapping.records.append(Record(_record_key(document, key), bundle))
        return mapping


def _ndjson_lines(text: bytes, mapping: Mapping) -> list[tuple[int | None, Any]]:
    found: list[tuple[int | None, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append((number, strict_loads(line)))
        except JsonRefused as exc:
            mapping.reject(f"line {number}", exc.path, str(exc))
        except orjson.JSONDecodeError as exc:
            mapping.reject(f"line {number}", None, f"not JSON ({exc})")
    return found


def _record_key(document: dict[str, Any], where: str) -> str:
    rid = document.get("id")
    return f"{where}: {document['resourceType']}/{rid}" if isinstance(rid, str) else where


def _record_bundle(document: dict[str, Any], source: Source) -> dict[str, Any] | None:
    if document["resourceType"] == "Bundle" and document.get("type") == "transaction":
        if not document.get("entry"):
            return None
        return {**document, "entry": [_normalized_entry(e, source) for e in document["entry"]]}
    if document["resourceType"] == "Bundle":
        entries = [e for e in document.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    else:
        entries = [{"resource": document}]
    if not entries:
        return None
    local = {}  # what the sender calls each entry -> the entry's new local name
    for entry in entries:
        resource, name = entry["resource"], f"urn:uuid:{uuid.uuid4()}"
        entry["_name"] = name
        if isinstance(resource.get("id"), str):
            local[f"{resource['resourceType']}/{resource['id']}"] = name
        if isinstance(entry.get("fullUrl"), str):
            local[entry["fullUrl"]] = name
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(e, local, source) for e in entries]}


def _normalized_entry(entry: Any, source: Source) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
        return {**entry, "resource": normalize_resource(entry["resource"], source)}
    return entry


def _entry(entry: dict[str, Any], local: dict[str, str], source: Source) -> dict[str, Any]:
    """A conditional create of the entry's resource, its references pointed at entries or earlier records."""
    resource = normalize_resource(entry["resource"], source)
    mapping = {ref: local.get(ref) or _earlier(ref, source) for ref in references_in(resource)}
    resource = rewrite(resource, {k: v for k, v in mapping.items() if v is not None})
    match = _match(resource, source)
    resource.pop("id", None)  # the hub assigns its own ids; the sender's is kept as an identifier
    return {"fullUrl": entry["_name"], "resource": resource, "request": write_request(resource["resourceType"],
                                                                                      match)}


def _source_id(rtype: str, rid: str, source: Source) -> dict[str, str]:
    return {"system": f"{HUB}/sid/source-id/{source.facility or 'unknown'}", "value": f"{rtype}/{rid}"}


def _earlier(reference: str, source: Source) -> str | None:
    """``Type/id`` of a resource the sender sent before: found again by its source-id identifier."""
    if _RELATIVE.fullmatch(reference) is None:
        return None
    rtype, rid = reference.split("/")
    return conditional_reference(rtype, _source_id(rtype, rid, source))


def _match(resource: dict[str, Any], source: Source) -> dict[str, Any] | None:
    """The identifier the resource is created once by: its source id when it has one (the references of
    later records use it), else its first business identifier."""
    rid = resource.get("id")
    if isinstance(rid, str) and _has_identifier_element(resource["resourceType"]):
        made = _source_id(resource["resourceType"], rid, source)
        resource["identifier"] = [*resource.get("identifier", []), made]
        return made
    for item in resource.get("identifier", []) if isinstance(resource.get("identifier"), list) else []:
        if isinstance(item, dict) and isinstance(item.get("system"), str) and isinstance(item.get("value"), str):
            return item
    return None


@cache
def _has_identifier_element(rtype: str) -> bool:
    try:
        return "identifier" in model_class(rtype).model_fields
    except (KeyError, ValueError):
        return False


def normalize_resource(resource: dict[str, Any], source: Source) -> dict[str, Any]:
    """Names NFC (a name given as text only is split family first), identifier systems canonical,
    Vietnamese phone numbers in E.164, and the source tags. Returns a new dict (the input is left alone)."""
    out = dict(resource)
    if isinstance(out.get("name"), list):
        out["name"] = [_name(n) if isinstance(n, dict) else n for n in out["name"]]
    if isinstance(out.get("identifier"), list):
        out["identifier"] = [_identifier(i) for i in out["identifier"]]
    if isinstance(out.get("telecom"), list):
        out["telecom"] = [_telecom(t) for t in out["telecom"]]
    return tag(out, source, source.facility)


def _name(name: dict[str, Any]) -> dict[str, Any]:
    out = dict(name)
    if "family" not in out and "given" not in out and isinstance(out.get("text"), str):
        return {**(person_name(out["text"], use=out.get("use", "official")) or {}), **{k: v for k, v in out.items()
                                                                                       if k != "text"}}
    for key in ("family", "text"):
        if isinstance(out.get(key), str):
            out[key] = nfc(out[key])
    if isinstance(out.get("given"), list):
        out["given"] = [nfc(g) if isinstance(g, str) else g for g in out["given"]]
    return out


def _identifier(item: Any) -> Any:
    if isinstance(item, dict) and isinstance(item.get("system"), str):
        return {**item, "system": canonical_system(item["system"])}
    return item


def _telecom(item: Any) -> Any:
    if isinstance(item, dict) and item.get("system") == "phone" and isinstance(item.get("value"), str):
        e164 = phone(item["value"]) if item["value"].strip().startswith(("0", "+84", "84")) else None
        if e164 is not None:
            return {**item, "value": e164}
    return item
