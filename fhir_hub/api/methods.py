"""Which methods a URL answers: the ``Allow`` of an ``OPTIONS`` answer and of every 405 (RFC 9110 sections
9.3.7 and 15.5.6), and how a ``HEAD`` request is told apart once it runs as a ``GET`` (section 9.3.2).

Starlette's 405 names only the methods of the first route whose path matched, so ``PUT /Patient/1``
would have been refused with ``Allow: GET`` although update, patch and delete live on that URL too. Here
every mounted route is asked; a route counts only when its path parameters could name something (a
resource type, a FHIR id, a version number), so ``/metadata`` is not also ``/{rtype}`` and
``/Patient/$lastn`` is not a read of the id ``$lastn``. Computed only for OPTIONS and 405 answers: no
ordinary request pays for it.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.fhir.registry import is_resource_type

HEAD_MARK = "fhir_hub.head"  # in the scope of a HEAD request served by the GET routes (api/conventions.py)
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def request_method(scope: Scope) -> str:
    """The method the client sent: a HEAD reaches the routes as a GET."""
    return "HEAD" if scope.get(HEAD_MARK) else str(scope["method"])


def allowed_methods(routes: list[BaseRoute], path: str) -> tuple[str, ...]:
    """The methods some route serves at ``path``, in a fixed order, HEAD beside GET and OPTIONS always;
    empty when no route serves the path at all (a 404, not a 405)."""
    found: set[str] = set()
    for route in routes:
        if not isinstance(route, Route) or not route.methods:
            continue
        match = route.path_regex.match(path)
        if match is not None and _could_name_something(match.groupdict()):
            found |= route.methods
    if not found:
        return ()
    if "GET" in found:
        found.add("HEAD")
    found.add("OPTIONS")
    return tuple(m for m in _ORDER if m in found) + tuple(sorted(found - set(_ORDER)))


def allow_header(methods: tuple[str, ...]) -> str:
    return ", ".join(methods)


def _could_name_something(params: dict[str, Any]) -> bool:
    rtype, rid, vid = params.get("rtype"), params.get("rid"), params.get("vid")
    return ((rtype is None or is_resource_type(rtype)) and (rid is None or is_valid_id(rid))
            and (vid is None or vid.isdigit()))


def operation_in(path: str) -> str | None:
    """The ``$name`` an unknown URL asks for, if it asks for an operation (its last such segment)."""
    for segment in reversed(path.split("/")):
        if segment.startswith("$") and len(segment) > 1:
            return segment
    return None
