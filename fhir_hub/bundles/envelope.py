"""Reading a batch or transaction Bundle into entry requests, each checked on its own.

A problem with one entry (no request, an unknown method, a URL this server cannot act on) is kept with
that entry rather than raised: a batch answers it in that entry's response, a transaction fails as a
whole with it. Problems with the Bundle itself (not a Bundle, no type, a type that is neither batch nor
transaction) are raised at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fhir_hub.errors import BadRequest, HubError, NotFound
from fhir_hub.fhir.ids import check_id
from fhir_hub.fhir.registry import is_resource_type

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Target:
    """What an entry's ``request.url`` names: a type, an instance or version, or a type with criteria."""

    rtype: str
    rid: str | None = None
    vid: str | None = None
    query: str | None = None  # search criteria (a conditional interaction or a search)

    @property
    def key(self) -> str | None:
        return f"{self.rtype}/{self.rid}" if self.rid is not None else None


@dataclass(frozen=True, slots=True)
class EntryRequest:
    index: int
    method: str
    target: Target
    full_url: str | None
    resource: dict[str, Any] | None
    if_match: str | None = None
    if_none_exist: str | None = None
    if_none_match: str | None = None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


@dataclass(frozen=True, slots=True)
class EntryProblem:
    """An entry that cannot be processed, and why."""

    index: int
    error: HubError
    full_url: str | None = None


def bundle_type(bundle: dict[str, Any]) -> str:
    if bundle.get("resourceType") != "Bundle":
        raise BadRequest(f"resourceType: POST to the base URL takes a Bundle, not {bundle.get('resourceType')!r}",
                         expression=["resourceType"])
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise BadRequest(f"Bundle.type: {kind!r} cannot be processed here; the base URL takes a 'batch' or a "
                         "'transaction' Bundle", expression=["Bundle.type"])
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array", expression=["Bundle.entry"])
    return str(kind)


def read_entries(bundle: dict[str, Any], base_url: str) -> list[EntryRequest | EntryProblem]:
    found: list[EntryRequest | EntryProblem] = []
    for index, raw in enumerate(bundle.get("entry") or []):
        full_url = raw.get("fullUrl") if isinstance(raw, dict) and isinstance(raw.get("fullUrl"), str) else None
        try:
            found.append(_entry(index, raw, base_url))
        except HubError as problem:
            found.append(EntryProblem(index, problem, full_url))
    return found


def _entry(index: int, raw: Any, base_url: str) -> EntryRequest:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}: an entry must be a JSON object", expression=[where])
    request = raw.get("request")
    if not isinstance(request, dict):
        raise BadRequest(f"{where}.request: every entry of a batch or transaction needs a request",
                         expression=[f"{where}.request"])
    method = request.get("method")
    if method not in METHODS:
        raise BadRequest(f"{where}.request.method: {method!r} is not one of {', '.join(METHODS)}",
                         expression=[f"{where}.request.method"])
    url = request.get("url")
    if not isinstance(url, str) or not url.strip():
        raise BadRequest(f"{where}.request.url is missing", expression=[f"{where}.request.url"])
    target = parse_url(url.strip(), base_url, where=f"{where}.request.url")
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise BadRequest(f"{where}.resource must be a JSON object", expression=[f"{where}.resource"])
    _check_shape(where, method, target, resource)
    full_url = raw.get("fullUrl")
    if full_url is not None and (not isinstance(full_url, str) or not full_url.strip()
                                 or full_url.strip() in ("urn:uuid:", "urn:oid:")):
        raise BadRequest(f"{where}.fullUrl: {full_url!r} is not a URL", expression=[f"{where}.fullUrl"])
    headers = {name: request.get(name) for name in ("ifMatch", "ifNoneExist", "ifNoneMatch")}
    for name, value in headers.items():
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{where}.request.{name} must be a string", expression=[f"{where}.request.{name}"])
    return EntryRequest(index, method, target, full_url, resource, headers["ifMatch"], headers["ifNoneExist"],
                        headers["ifNoneMatch"])


def _check_shape(where: str, method: str, target: Target, resource: dict[str, Any] | None) -> None:
    """Which URL forms and bodies each method takes (http.html#transaction)."""
    url = f"{where}.request.url"
    if method in ("POST", "PUT", "PATCH") and resource is None:
        raise BadRequest(f"{where}.resource: a {method} entry needs a resource", expression=[f"{where}.resource"])
    if method == "POST" and (target.rid is not None or target.query is not None):
        raise BadRequest(f"{url}: POST takes a resource type only (e.g. 'Patient'), with ifNoneExist for a "
                         "conditional create", expression=[url])
    unaddressed = target.vid is not None or (target.rid is None and target.query is None)
    if method in ("PUT", "PATCH", "DELETE") and unaddressed:
        raise BadRequest(f"{url}: {method} takes [type]/[id] or [type]?[criteria]", expression=[url])
    if method in ("POST", "PUT") and resource is not None and resource.get("resourceType") != target.rtype:
        raise BadRequest(f"{where}.resource.resourceType: {resource.get('resourceType')!r} does not match the "
                         f"request URL's type {target.rtype!r}", expression=[f"{where}.resource.resourceType"])


def parse_url(url: str, base_url: str, *, where: str) -> Target:
    """``Type``, ``Type/id``, ``Type/id/_history/vid`` or ``Type?criteria``, relative or under this server's base."""
    if any(c in url for c in "\t\r\n"):
        raise BadRequest(f"{where}: a URL may not contain tabs or line breaks", expression=[where])
    relative = url
    if "://" in url.split("?", 1)[0]:
        if not url.startswith(base_url + "/"):
            raise BadRequest(f"{where}: {url[:200]!r} is not on this server ({base_url})", expression=[where])
        relative = url[len(base_url) + 1:]
    try:
        parts = urlsplit(relative.lstrip("/"))
    except ValueError:
        raise BadRequest(f"{where}: {url[:200]!r} is not a URL", expression=[where]) from None
    segments = parts.path.split("/") if parts.path else []
    query = parts.query if "?" in relative else None
    if not segments or not segments[0]:
        raise BadRequest(f"{where}: {url[:200]!r} names no resource type (system-level requests are not "
                         "supported in a Bundle)", expression=[where])
    rtype = segments[0]
    if any(s.startswith("$") for s in segments):
        raise BadRequest(f"{where}: operations ({url[:200]!r}) are not supported in a Bundle", expression=[where],
                         code="not-supported")
    if not is_resource_type(rtype):
        raise NotFound(f"{where}: resource type {rtype[:80]!r} is not supported by this server", expression=[where],
                       code="not-supported")
    if len(segments) == 1:
        return Target(rtype, query=query)
    rid = check_id(segments[1], where=where)
    if len(segments) == 2:
        return Target(rtype, rid)  # parameters on an instance URL (e.g. _format) have no effect in a Bundle
    if len(segments) == 4 and segments[2] == "_history" and segments[3].isascii() and segments[3].isdigit():
        return Target(rtype, rid, vid=segments[3])
    raise BadRequest(f"{where}: {url[:200]!r} is not an interaction this server supports in a Bundle",
                     expression=[where], code="not-supported")
