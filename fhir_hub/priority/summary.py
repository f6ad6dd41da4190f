"""The priority record's consolidated summary: one ``Composition`` per person in a risk group.

Built from every record linked to the person (each facility's Conditions, medications, allergies,
immunisations and results), so a clinician meeting a high-risk resident sees one summary rather than a
record per facility. Its sections follow the International Patient Summary's (LOINC section codes), with
the status filters a summary needs: no resolved, inactive or refuted problem; no resolved allergy; only
active, on-hold or unknown medications; completed immunisations; final results, the latest per test. The
patient-summary issue replaces it with the IPS document (``$summary``); until then this is what the priority
record holds.

It refers to the resources rather than copying them, so the commit pipeline labels it with the labels of
what it refers to (an HIV diagnosis makes the summary HIV-labelled) and consent hides it from whoever may
not see one of its entries. Its ``date`` is the latest change among its entries, not the time it was built:
a refresh that finds nothing new writes the same Composition, which stores nothing.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

LOINC = "http://loinc.org"
SUMMARY_TYPE = {"coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]}
_NO_DATA = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                        "code": "unavailable", "display": "Unavailable"}]}
AUTHOR = {"display": "Ho Chi Minh City health record hub (priority record)"}
# the types read to build the summary (besides the Patient and the Conditions the risk rules already read)
TYPES = ("MedicationRequest", "MedicationStatement", "AllergyIntolerance", "Immunization", "Observation")


def summary_id(master: str) -> str:
    """A FHIR id for the person's summary: the same whoever writes it."""
    return "summary-" + hashlib.sha256(f"{master}|summary".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Section:
    code: str  # LOINC section code (IPS)
    title: str  # Vietnamese first, English after
    types: tuple[str, ...]
    keep: Callable[[dict[str, Any]], bool]
    required: bool  # IPS: present even when empty, with an emptyReason


def _status(path: str, *allowed: str | None) -> Callable[[dict[str, Any]], bool]:
    """A resource whose status (a code, or the first coding of a CodeableConcept) is one of ``allowed``
    (None: absent)."""
    def keep(resource: dict[str, Any]) -> bool:
        value = resource.get(path)
        if isinstance(value, dict):
            codings = value.get("coding") or [{}]
            value = codings[0].get("code") if isinstance(codings[0], dict) else None
        return value in allowed
    return keep


_CURRENT = _status("clinicalStatus", "active", "recurrence", "relapse", None)
_NOT_REFUTED = _status("verificationStatus", "confirmed", "provisional", "differential", "unconfirmed", None)


def _problem(resource: dict[str, Any]) -> bool:
    return _CURRENT(resource) and _NOT_REFUTED(resource)


def _allergy(resource: dict[str, Any]) -> bool:
    return (_status("clinicalStatus", "active", None)(resource)
            and _status("verificationStatus", "confirmed", "unconfirmed", None)(resource))


def _result(resource: dict[str, Any]) -> bool:
    categories = {c.get("code") for cc in resource.get("category") or [] if isinstance(cc, dict)
                  for c in cc.get("coding") or [] if isinstance(c, dict)}
    return (_status("status", "final", "amended", "corrected")(resource)
            and bool(categories & {"laboratory", "vital-signs"}))


SECTIONS = (
    Section("11450-4", "Vấn đề sức khỏe (Problems)", ("Condition",), _problem, True),
    Section("48765-2", "Dị ứng (Allergies and intolerances)", ("AllergyIntolerance",), _allergy, True),
    Section("10160-0", "Thuốc đang dùng (Medications)", ("MedicationRequest", "MedicationStatement"),
            _status("status", "active", "on-hold", "unknown", "intended"), True),
    Section("11369-6", "Tiêm chủng (Immunizations)", ("Immunization",), _status("status", "completed"), False),
    Section("30954-2", "Kết quả xét nghiệm (Results)", ("Observation",), _result, False),
)


def composition(master: str, resources: Iterable[dict[str, Any]], flags: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The person's summary: one section per IPS section (the required ones even when empty), then the
    risk groups (their ``Flag``s)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        if isinstance(resource.get("id"), str):
            by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    sections = []
    listed: list[dict[str, Any]] = []
    for section in SECTIONS:
        kept = [r for t in section.types for r in by_type.get(t, []) if section.keep(r)]
        if section.types == ("Observation",):
            kept = _latest_per_test(kept)
        kept.sort(key=_order)
        if kept or section.required:
            sections.append(_section(section.code, section.title, kept))
            listed += kept
    risk = sorted(flags, key=lambda f: str(f.get("id")))
    if risk:
        sections.append(_section(None, "Nhóm nguy cơ (Risk groups)", risk))
        listed += risk
    stamps = [str((r.get("meta") or {}).get("lastUpdated")) for r in listed if (r.get("meta") or {}).get("lastUpdated")]
    return {"resourceType": "Composition", "id": summary_id(master), "status": "final", "type": SUMMARY_TYPE,
            "subject": {"reference": master}, "date": max(stamps) if stamps else "1970-01-01T00:00:00Z",
            "author": [AUTHOR], "title": "Tóm tắt hồ sơ ưu tiên (Priority record summary)",
            "section": sections}


def _order(resource: dict[str, Any]) -> tuple[str, str, str, str]:
    """Oldest first by clinical date, then by what the line says: ids (random) decide only between equals."""
    when = next((str(resource[f]) for f in ("onsetDateTime", "recordedDate", "authoredOn", "effectiveDateTime",
                                            "occurrenceDateTime", "dateAsserted") if resource.get(f)), "")
    return resource["resourceType"], when, _label(resource), resource["id"]


def _latest_per_test(observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for observation in sorted(observations, key=lambda o: (_when(o), str(o.get("id")))):
        codings = (observation.get("code") or {}).get("coding") or [{}]
        latest[(str(codings[0].get("system")), str(codings[0].get("code")))] = observation  # the later wins
    return list(latest.values())


def _when(observation: dict[str, Any]) -> str:
    return str(observation.get("effectiveDateTime") or (observation.get("effectivePeriod") or {}).get("start")
               or observation.get("issued") or "")


def _section(code: str | None, title: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    section: dict[str, Any] = {"title": title}
    if code is not None:
        section["code"] = {"coding": [{"system": LOINC, "code": code}]}
    if entries:
        items = "".join(f"<li>{html.escape(_label(e))}</li>" for e in entries)
        section["text"] = {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{items}</ul></div>'}
        section["entry"] = [{"reference": f"{e['resourceType']}/{e['id']}"} for e in entries]
    else:
        section["text"] = {"status": "generated",
                           "div": '<div xmlns="http://www.w3.org/1999/xhtml">Không có thông tin (No information)</div>'}
        section["emptyReason"] = _NO_DATA
    return section


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 has no place for


def _label(resource: dict[str, Any]) -> str:
    """What a line of the narrative says of an entry: its code's text or first display or code, the first
    that is not blank once the control characters XML cannot hold are dropped (the narrative is XHTML:
    ``txt-1`` wants it well-formed, ``txt-2`` wants some non-whitespace content)."""
    for field in ("code", "medicationCodeableConcept", "vaccineCode"):
        concept = resource.get(field)
        if isinstance(concept, dict):
            codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
            for said in (concept.get("text"), *(c.get("display") or c.get("code") for c in codings)):
                kept = _NOT_XML.sub("", said) if isinstance(said, str) else ""
                if kept.strip():
                    return kept
    return f"{resource.get('resourceType')}/{resource.get('id')}"
