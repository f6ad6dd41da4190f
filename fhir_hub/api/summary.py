"""``GET /Patient/{id}/$summary`` and ``GET /Patient/$summary?identifier=system|value`` over HTTP (IPS IG,
OperationDefinition summary): an International Patient Summary document (``fhir_hub.services.summary``),
its narratives in the language ``Accept-Language`` prefers of Vietnamese (the default) and English."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import Fhir
from fhir_hub.api.negotiation import preferred_language
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, check_instance, fhir_route
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.jsonio import dumps
from fhir_hub.services import summary as service
from profiles.ips import LANGUAGES

router = APIRouter()

_SUMMARY = {"name": "summary", "definition": "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"}
_HEADERS = ("Accept-Language",)


def _language(ctx: Fhir) -> str:
    return preferred_language(ctx.request.headers.get("accept-language"), LANGUAGES)


def _answer(ctx: Fhir, document: dict[str, object], lang: str) -> Response:
    return fhir_response(ctx, dumps(document), headers={"Content-Language": lang, "Vary": "Accept-Language"})


def _check_params(ctx: Fhir, allowed: tuple[str, ...]) -> None:
    """Parameters this operation does not take are ignored, or refused with ``Prefer: handling=strict``."""
    unknown = [k for k in ctx.request.query_params if k not in (*allowed, "_format", "_pretty")]
    if unknown and ctx.strict:
        raise BadRequest(f"$summary: parameter {unknown[0][:80]!r} is not supported", expression=[unknown[0][:80]],
                         code="not-supported")


@router.get("/Patient/$summary", **fhir_route(
    "summary", "type", summary="The International Patient Summary of the person an identifier names",
    query=("identifier",), headers=_HEADERS, operation=_SUMMARY, resource="Patient"))
async def summary_by_identifier(ctx: Fhir) -> Response:
    _check_params(ctx, ("identifier",))
    identifiers = ctx.request.query_params.getlist("identifier")
    if len(identifiers) != 1:
        raise BadRequest("$summary: give one identifier (system|value), or ask for Patient/{id}/$summary",
                         expression=["identifier"])
    lang = _language(ctx)
    return _answer(ctx, await service.summary_by_identifier(ctx.session, identifiers[0], lang=lang), lang)


@router.get("/Patient/{rid}/$summary", **fhir_route(
    "summary", "instance", summary="The International Patient Summary of a patient, across their linked records",
    headers=_HEADERS, operation=_SUMMARY, resource="Patient"))
async def patient_summary(rid: IdPath, ctx: Fhir) -> Response:
    check_instance("Patient", rid)
    _check_params(ctx, ())
    lang = _language(ctx)
    return _answer(ctx, await service.summary_of(ctx.session, rid, lang=lang), lang)
