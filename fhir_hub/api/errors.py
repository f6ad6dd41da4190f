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

from fhir_hub.api.negotiation import FHIR_JSON
from fhir_hub.api.responses import outcome_json
from fhir_hub.errors import HubError, Issue

log = logging.getLogger(__name__)

_STATUS_CODES = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}


def error_response(status: int, issues: tuple[Issue, ...], headers: dict[str, str] | None = None) -> Response:
    return Response(content=outcome_json(*issues), status_code=status, headers=headers,
                    media_type=f"{FHIR_JSON}; charset=utf-8")


async def _hub_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    return error_response(exc.status, exc.issues, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"No FHIR endpoint at {request.url.path[:200]}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path[:200]}"
    else:
        message = str(exc.detail)
    code = _STATUS_CODES.get(exc.status_code, "processing")
    return error_response(exc.status_code, (Issue(code, message),), dict(exc.headers or {}))


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
