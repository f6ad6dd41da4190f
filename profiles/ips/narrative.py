"""The generated narratives of a patient summary: one XHTML table per section, in Vietnamese or English.

Pure: it renders what it is given (the resources a section holds, as the caller may read them) and reads
nothing. The words come from ``sections.json`` (headings, status words); clinical text is the record's own
(a code's ``text`` or display, as the facility wrote it), escaped. A ``#id`` reference is named from the
resource's ``contained`` resources, so a medication a facility sent contained shows by name (the known HAPI
defect drops it); other references are named from ``names`` (the referenced resources in the document).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from profiles.ips import IpsRules

XHTML = "http://www.w3.org/1999/xhtml"
_COLUMNS = ("name", "status", "date", "detail")


def div(lang: str, inner: str) -> str:
    return f'<div xmlns="{XHTML}" lang="{lang}" xml:lang="{lang}">{inner}</div>'


def section_text(rules: IpsRules, resources: Sequence[Mapping[str, Any]], lang: str,
                 names: Mapping[str, str]) -> dict[str, str]:
    """A section's ``text``: a table with a row per resource (name, status, date, details)."""
    used = [c for c in _COLUMNS if any(c in rules.columns[r["resourceType"]] for r in resources)]
    head = "".join(f"<th>{escape(rules.headings[c][lang])}</th>" for c in used)
    rows = "".join("<tr>" + "".join(f"<td>{escape(_cell(rules, r, c, lang, names))}</td>" for c in used) + "</tr>"
                   for r in resources)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return {"status": "generated", "div": div(lang, table)}


def paragraph_text(text: str, lang: str) -> dict[str, str]:
    """A one-sentence narrative (an empty section's "no information", the document's own line)."""
    return {"status": "generated", "div": div(lang, f"<p>{escape(text)}</p>")}


def person_name(patient: Mapping[str, Any]) -> str:
    """A Patient's name as written (``text``, else family then given: the Vietnamese order)."""
    for name in patient.get("name") or []:
        if isinstance(name, dict):
            if name.get("text"):
                return str(name["text"])
            parts = [name.get("family", ""), *name.get("given", [])]
            if any(parts):
                return " ".join(str(p) for p in parts if p)
    return f"Patient/{patient.get('id', '')}"


def display_of(resource: Mapping[str, Any]) -> str | None:
    """What a referenced resource is called (a Medication's code, a Device's name, a person's name)."""
    if resource.get("resourceType") in ("Patient", "Practitioner", "RelatedPerson"):
        return person_name(resource)
    for element in ("code", "deviceName", "name", "type"):
        text = _text(resource.get(element), {}, resource)
        if text:
            return text
    return None


def _cell(rules: IpsRules, resource: Mapping[str, Any], column: str, lang: str, names: Mapping[str, str]) -> str:
    for path in rules.columns[resource["resourceType"]].get(column, ()):
        text = _text(_get(resource, path), names, resource)
        if text:
            if column == "status":
                return rules.words.get(text, {}).get(lang, text)
            return text
    return ""


def _get(resource: Mapping[str, Any], path: str) -> Any:
    value: Any = resource
    for step in path.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        value = value.get(step) if isinstance(value, dict) else None
    return value


def _text(value: Any, names: Mapping[str, str], resource: Mapping[str, Any]) -> str:
    """An element in words: a CodeableConcept's text or display, a Quantity with its unit, a reference by
    the name of what it refers to."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v, names, resource) for v in value) if t)
    if not isinstance(value, dict):
        return ""
    if "reference" in value or ("display" in value and "coding" not in value and "code" not in value):
        return _reference(value, names, resource)
    if value.get("text"):
        return str(value["text"])
    if "coding" in value:
        codings = [c for c in value["coding"] if isinstance(c, dict)]
        return next((str(c["display"]) for c in codings if c.get("display")),
                    next((str(c["code"]) for c in codings if c.get("code")), ""))
    if "value" in value:
        unit = value.get("unit") or value.get("code") or ""
        return f"{value['value']} {unit}".strip()
    if "name" in value:  # a Device's deviceName
        return str(value["name"])
    return str(value.get("display") or value.get("code") or "")


def _reference(value: Mapping[str, Any], names: Mapping[str, str], resource: Mapping[str, Any]) -> str:
    ref = value.get("reference")
    if isinstance(ref, str) and ref.startswith("#"):
        inner = next((c for c in resource.get("contained") or [] if isinstance(c, dict) and c.get("id") == ref[1:]),
                     None)
        if inner is not None and (named := display_of(inner)):
            return named
    elif isinstance(ref, str) and ref in names:
        return names[ref]
    return str(value.get("display") or ref or "")
