"""The one place errors become HTTP answers: every error a client sees is an OperationOutcome.

Routing errors from Starlette (unknown path, wrong method), FastAPI's parameter errors and unexpected
exceptions are translated here too, so no default HTML or ``{"detail": ...}`` body ever leaves the hub. An
unexpected exception is logged with an incident id; the client gets the id, never the traceback.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_hub.api.methods import allow_header, allowed_methods, operation_in, request_method
from fhir_hub.api.negotiation import FHIR_JSON
from fhir_hub.api.responses import outcome_json
from fhir_hub.api.routing import UnknownOperation, unsupported_operation
from fhir_hub.errors import HubError, Issue, MethodNotAllowed
from fhir_hub.fhir.registry import is_resource_type

log = logging.getLogger(__name__)

_STATUS_CODES = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}


def error_response(status: int, issues: tuple[Issue, ...], headers: dict[str, str] | None = None) -> Response:
    return Response(content=outcome_json(*issues), status_code=status, headers=headers,
                    media_type=f"{FHIR_JSON}; charset=utf-8")


async def _hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    headers = exc.headers
    if isinstance(exc, UnknownOperation) and allowed_methods(request.app.routes, request.url.path):
        exc = MethodNotAllowed(f"{request_method(request.scope)} is not allowed on {request.url.path[:200]}")
    if exc.status == 405 and "Allow" not in headers:
        headers = {**headers, "Allow": allow_header(allowed_methods(request.app.routes, request.url.path))}
    return error_response(exc.status, exc.issues, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors. Its 405 names the methods of one route only: the Allow header is
    recomputed over every route (``api/methods.py``), and a URL no route serves, 404 or 405 alike, is a
    404; an unknown ``$operation`` is named as such rather than as a missing endpoint."""
    assert isinstance(exc, StarletteHTTPException)
    status, headers, message, path = exc.status_code, dict(exc.headers or {}), str(exc.detail), request.url.path
    if status in (404, 405):
        allowed = allowed_methods(request.app.routes, path)
        operation = operation_in(path)
        if not allowed and operation is not None:
            rtype = path.strip("/").split("/", 1)[0]
            return await _hub_error(request, unsupported_operation(
                operation, rtype if is_resource_type(rtype) else None, instance=path.strip("/").count("/") > 1))
        if allowed:
            status, headers = 405, {"Allow": allow_header(allowed)}
            message = f"{request_method(request.scope)} is not allowed on {path[:200]} (allowed: {headers['Allow']})"
        else:
            status, message = 404, f"No FHIR endpoint at {path[:200]}"
    return error_response(status, (Issue(_STATUS_CODES.get(status, "processing"), message),), headers)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = []
    for err in exc.errors()[:10]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("path", "query", "header", "body"))
        issues.append(Issue("invalid", f"{where or 'request'}: {err.get('msg', 'invalid')}", (where,) if where else ()))
    return error_response(400, tuple(issues) or (Issue("invalid", "The request is not valid"),))


async def _store_unreachable(request: Request, exc: Exception) -> Response:
    incident = uuid.uuid4().hex[:12]
    log.error("incident %s: %s %s: data store unreachable: %s", incident, request.method, request.url.path, exc)
    return error_response(503, (Issue("transient", f"The data store did not answer (incident {incident}); nothing "
                                                   "was changed, retry shortly"),), {"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    incident = uuid.uuid4().hex[:12]
    log.exception("incident %s: %s %s failed", incident, request.method, request.url.path)
    return error_response(500, (Issue("exception", f"Internal error (incident {incident}); the request may be "
                                                    "retried, and the incident id helps the operators"),))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ConnectionFailure, _store_unreachable)
    app.add_exception_handler(Exception, _unexpected)
