"""``GET /{type}/{id}`` straight to the read route's endpoint, past the router and the dependency solver.

Why: a read is the hub's most frequent request and its cheapest, and issue 21 wants it within 0.8 of a bare
``find_one``. Measured per read over HTTP (py-spy, concurrency 8), matching the path against every route
in order (the read route is the last: every literal path must win over it), FastAPI's request handler
and its dependency solving took about a third of the hub's CPU, around the handful of calls that do the
work.

Nothing about the answer changes, because nothing is reimplemented: this layer does what the router and
FastAPI would do for that one route and calls the same functions. It sets the scope's ``route`` and
``path_params`` as the router does, builds the request's context with ``fhir_context`` (the ``Fhir``
dependency: token, audit record, scopes, negotiation), awaits the route's own endpoint, and renders an
error with the handler the app registered for it; an exception no handler takes goes up to the server
error middleware, as from the router. It sits inside every middleware of the app (the audit, the HTTP
conventions, the time budget), so a HEAD, gzip, CORS, the 503 of a spent budget and the audited status are
the same.

A request is taken only when the router would give it to the read route: a resource type and an id of FHIR
id syntax as the two segments, no root path, and no earlier route able to match it, read off the routes'
templates on the first request (``StructureDefinition/{rid}`` is the hub's own; ``Patient/$summary`` is no
id). Everything else goes on to the router unchanged. ``tests/api/test_direct_read.py`` compares this
layer's answers with the router's, byte for byte, and its choice of route with Starlette's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_hub.api.context import fhir_context
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.fhir.registry import is_resource_type

Endpoint = Callable[..., Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class DirectRead:
    def __init__(self, app: ASGIApp, *, endpoint: Endpoint) -> None:
        """``endpoint``: the read route's (``api/read.py``); its route is found among the app's routes."""
        self.app = app
        self.endpoint = endpoint
        self._route: BaseRoute | None = None
        self._shadowed: Shadowed | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        if self._shadowed is None:
            self._route, self._shadowed = read_route(scope["app"].routes, self.endpoint)
        target = read_target(scope["path"], self._shadowed) if self._route is not None else None
        if target is None:
            await self.app(scope, receive, send)
            return
        rtype, rid = target
        scope["route"] = self._route
        scope["endpoint"] = self.endpoint
        scope["path_params"] = {"rtype": rtype, "rid": rid}
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(rtype, rid, await fhir_context(request))
        except Exception as exc:
            handler = _handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # to the server error middleware, as from the router
            response = await handler(request, exc)
        await response(scope, receive, send)


class Shadowed:
    """Which ``/{type}/{id}`` paths a route listed before the read route would match."""

    def __init__(self) -> None:
        self.types: set[str] = set()  # ``/StructureDefinition/{rid}``: every id under the type
        self.ids: set[str] = set()  # ``/{rtype}/_history``: that segment under every type
        self.pairs: set[tuple[str, str]] = set()
        self.everything = False  # a route whose template this cannot read: never take a request

    def add(self, route: BaseRoute) -> None:
        path: str | None = getattr(route, "path", None)
        if path is None:
            self.everything = True
            return
        if isinstance(route, Mount):  # matches every path under its prefix
            first = path.strip("/").split("/")[0]
            if not first or "{" in first:
                self.everything = True
            else:
                self.types.add(first)
            return
        if ":path}" in path:  # a converter that spans segments
            self.everything = True
            return
        segments = path.split("/")[1:]
        if len(segments) != 2:
            return
        first, second = segments
        if first.startswith("{") and second.startswith("{"):
            self.everything = True  # another ``/{a}/{b}``: which of the two wins is the router's to say
        elif second.startswith("{"):
            self.types.add(first)
        elif first.startswith("{"):
            self.ids.add(second)
        else:
            self.pairs.add((first, second))

    def hides(self, rtype: str, rid: str) -> bool:
        return self.everything or rtype in self.types or rid in self.ids or (rtype, rid) in self.pairs


def read_target(path: str, shadowed: Shadowed) -> tuple[str, str] | None:
    """The type and id of ``/{type}/{id}`` when the router would give it to the read route, else None."""
    _, rtype, rid, *rest = (*path.split("/"), "")
    if rest != [""] or not is_valid_id(rid) or not is_resource_type(rtype) or shadowed.hides(rtype, rid):
        return None
    return rtype, rid


def read_route(routes: Iterable[BaseRoute], endpoint: Endpoint) -> tuple[BaseRoute | None, Shadowed]:
    """The route whose endpoint is ``endpoint`` (None when it is not mounted: nothing is taken), and what the
    routes before it shadow."""
    shadowed = Shadowed()
    for route in routes:
        if getattr(route, "endpoint", None) is endpoint:
            return route, shadowed
        methods = getattr(route, "methods", None)
        if methods is None or "GET" in methods:
            shadowed.add(route)
    return None, shadowed


def _handler(handlers: dict[Any, Handler], exc: Exception) -> Handler | None:
    """The handler the router's exception middleware would choose: the nearest class in the exception's
    MRO, ``Exception`` itself left to the server error middleware (Starlette's split)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
