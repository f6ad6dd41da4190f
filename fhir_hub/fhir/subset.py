"""``_summary`` and ``_elements``: returning part of a resource, marked as such (FHIR R4 search.html#summary).

Which elements are in the summary and which are mandatory is read from the R4B models (each field's
``summary_element_property`` and required flags), so the subsets follow the definitions. A subsetted
resource carries the ``SUBSETTED`` tag, as the spec requires, so nobody mistakes it for the whole record.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_hub.fhir.jsonio import dumps, loads
from fhir_hub.fhir.registry import model_class

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
_ALWAYS = frozenset({"resourceType", "id", "meta"})


@cache
def _fields(rtype: str) -> tuple[frozenset[str], frozenset[str], dict[str, str]]:
    """(summary element names, mandatory element names, JSON name -> element name) of a type."""
    summary, mandatory, element_of = set(), set(), {}
    for name, field in model_class(rtype).model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        json_name = field.alias or name
        element = str(extra.get("one_of_many") or json_name)
        element_of[json_name] = element
        if name.endswith("__ext"):
            element_of[json_name] = element_of.get(json_name[1:], json_name[1:])
            continue
        if extra.get("summary_element_property"):
            summary.add(json_name)
        if extra.get("element_required") or extra.get("one_of_many_required") or field.is_required():
            mandatory.add(json_name)
    return frozenset(summary), frozenset(mandatory), element_of


def subset(body: bytes, *, summary: str | None, elements: tuple[str, ...] | None) -> bytes:
    """The resource as the client asked for it; the stored bytes untouched when nothing is left out."""
    if summary in (None, "false") and elements is None:
        return body
    resource: dict[str, Any] = loads(body)
    rtype = resource["resourceType"]
    summary_names, mandatory, element_of = _fields(rtype)
    if elements is not None:
        wanted = set(elements)
        keep = {k for k in resource if k in _ALWAYS or k in mandatory or element_of.get(k, k) in wanted
                or element_of.get(k.lstrip("_"), k) in wanted}
    elif summary == "true":
        keep = {k for k in resource if k in _ALWAYS or k in summary_names or k.lstrip("_") in summary_names}
    elif summary == "text":
        keep = {k for k in resource if k in _ALWAYS or k == "text" or k in mandatory}
    else:  # data
        keep = {k for k in resource if k != "text"}
    trimmed = {k: v for k, v in resource.items() if k in keep}
    meta = dict(trimmed.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    trimmed["meta"] = meta
    return dumps(trimmed)
