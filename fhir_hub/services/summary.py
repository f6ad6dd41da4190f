"""``Patient/{id}/$summary`` (IPS IG, OperationDefinition summary): an International Patient Summary, a FHIR
``document`` Bundle whose Composition comes first, then every resource it refers to, once.

What goes in is read through the one reader, before any section is assembled: the Patient (404 as for an
unknown id when the caller may not read it), then the person's records of the types the sections draw from,
with ``patient:mdm`` (every record linked to the asked one: a summary is the person's, across facilities),
then the resources those refer to. Whatever the caller's access decision denies is therefore never seen by
the assembly, so it can appear in no section, no narrative and no entry. Which resource goes in which
section, and which statuses are left out, is ``profiles/ips/sections.json``; the narratives are
``profiles/ips/narrative.py``'s.

Resources are served as stored: ``contained`` resources stay where they are, so a ``#med1`` reference still
resolves. The Composition refers to the entries by their ``fullUrl`` (absolute URLs of this server) and is
authored by the hub, a ``Device`` entry of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from adapters.normalize import HUB
from fhir_hub import __version__
from fhir_hub.errors import BadRequest, HubError, NotFound
from fhir_hub.fhir.instant import local_day, to_instant
from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking.elements import master_of
from fhir_hub.search.query import parse_system_search
from fhir_hub.services.everything import referenced
from fhir_hub.services.search import own_count, search
from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion
from profiles.ips import IPS_BUNDLE, IPS_COMPOSITION, IpsRules, Section, default_rules, sorted_into
from profiles.ips.narrative import display_of, paragraph_text, person_name, section_text

LOINC = "http://loinc.org"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
_LEVELS = ("U", "L", "M", "N", "R", "V")  # least to most restricted
# a person's resources read in pages of this many, beyond the REST maximum (FHIR_HUB_MAX_COUNT): each page of
# a system search matches every type again (measured: pages of 1,000 made a 5,000-resource summary take twice
# as long as fetching the same with one search per type); the document holds them all anyway
_PAGE = 10_000
_MOST_MATCHES = 20  # Patients an identifier may name before it is plainly not one person's


class MultipleMatches(HubError):
    """The identifier names more than one person: the IPS ``$summary`` OperationDefinition wants one."""

    status, code = 422, "multiple-matches"


async def summary_of(session: Session, rid: str, *, lang: str) -> dict[str, Any]:
    """The summary of ``Patient/rid``'s person, narratives in ``lang``."""
    patient = await session.reader.read("Patient", rid)
    return await _document(session, patient, lang)


async def summary_by_identifier(session: Session, identifier: str, *, lang: str) -> dict[str, Any]:
    """The summary of the one person an identifier (``system|value``: a CCCD, a BHYT card number) names
    among the Patients the caller may read; 404 when none, 422 ``multiple-matches`` when several people."""
    if "|" not in identifier or not identifier.split("|", 1)[1]:
        raise BadRequest("identifier: give system|value (e.g. http://fhir.hl7.org.vn/core/sid/cccd|0791...)",
                         expression=["identifier"])
    found = await search(session, "Patient", [("identifier", identifier)], count=_MOST_MATCHES)
    records = [v for v in found.outcome.page if v.json is not None]
    people: dict[str, list[StoredVersion]] = {}
    for version in records:
        linked = master_of(loads(version.json or b"{}"))
        people.setdefault(linked[0] if linked is not None else version.key, []).append(version)
    if not people:
        raise NotFound(f"No Patient with identifier {identifier[:120]!r} is known to this server",
                       expression=["identifier"])
    if len(people) > 1 or found.outcome.next is not None:
        raise MultipleMatches(f"identifier {identifier[:120]!r} names {len(people)} different people; ask by id "
                              "(Patient/{id}/$summary)", expression=["identifier"])
    ((person, versions),) = people.items()
    master = await session.reader.read_many([person]) if person.startswith("Patient/") else []
    return await _document(session, master[0] if master else versions[0], lang)


async def _document(session: Session, patient: StoredVersion, lang: str) -> dict[str, Any]:
    rules = default_rules()
    subject: dict[str, Any] = loads(patient.json or b"{}")
    found = await _person_resources(session, patient.rid, rules)
    sections = sorted_into(rules, found)
    shown = [r for section in rules.sections for r in sections[section.key]]
    others = [loads(v.json) for v in await referenced(session, [subject, *shown], leave_out=frozenset(
        rules.source_types)) if v.json is not None and v.key != patient.key]
    names = {f"{r['resourceType']}/{r['id']}": name for r in [subject, *others] if (name := display_of(r))}
    now = to_instant(session.clock())
    author = _hub_device(session)
    base = session.base_url
    line = rules.summary_line[lang].format(name=person_name(subject), date=local_day(session.clock()).isoformat())
    composition = {
        "resourceType": "Composition", "id": _as_uuid(session.hub.writer.new_id()),
        "meta": {"profile": [IPS_COMPOSITION]}, "language": lang, "text": paragraph_text(line, lang),
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": rules.document["loinc"], "display": rules.document["display"]}]},
        "subject": {"reference": f"{base}/{patient.key}", "display": person_name(subject)},
        "date": now,
        "author": [{"reference": f"urn:uuid:{author['id']}", "display": _HUB_NAME}],
        "title": rules.document["title"][lang],
        "confidentiality": _confidentiality([subject, *shown]),
        "event": [{"code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActClass",
                                         "code": "PCPR"}]}], "period": {"end": now}}],
        "section": [s for section in rules.sections
                    if (s := _section(rules, section, sections[section.key], lang, names, base)) is not None],
    }
    unique: dict[str, dict[str, Any]] = {}
    for resource in [subject, *shown, *others]:
        unique.setdefault(f"{resource['resourceType']}/{resource['id']}", resource)
    entries = [{"fullUrl": f"{base}/{key}", "resource": resource} for key, resource in unique.items()]
    bundle_id = session.hub.writer.new_id()
    return {
        "resourceType": "Bundle", "id": bundle_id, "meta": {"lastUpdated": now, "profile": [IPS_BUNDLE]},
        "language": lang,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_as_uuid(bundle_id)}"},
        "type": "document", "timestamp": now,
        "entry": [{"fullUrl": f"urn:uuid:{composition['id']}", "resource": composition},
                  {"fullUrl": f"urn:uuid:{author['id']}", "resource": author}, *entries],
    }


async def _person_resources(session: Session, rid: str, rules: IpsRules) -> list[dict[str, Any]]:
    """Every resource of the sections' types whose patient is a record of the person, as the caller may
    see them (a system search through the reader, page after page)."""
    params, limits = own_count(session, [("patient:mdm", f"Patient/{rid}")], _PAGE)
    queries = parse_system_search(rules.source_types, params, strict=True, limits=limits)
    reader = session.reader
    types = {rtype for rtype in rules.source_types if reader.allows(rtype, "s")}
    queries = [q for q in queries if q.rtype in types]
    found: list[dict[str, Any]] = []
    after = None
    while queries:
        outcome = await reader.search_system(queries, after=after)
        found += [loads(v.json) for v in outcome.page if v.json is not None]
        if outcome.next is None:
            break
        after = outcome.next
    return found


def _section(rules: IpsRules, section: Section, resources: list[dict[str, Any]], lang: str,
             names: Mapping[str, str], base: str) -> dict[str, Any] | None:
    coded = {"coding": [{"system": LOINC, "code": section.loinc, "display": section.display}]}
    if not resources:
        if not section.required:
            return None
        reason = rules.empty_reason
        return {"title": section.title[lang], "code": coded, "text": paragraph_text(section.empty[lang], lang),
                "emptyReason": {"coding": [{"system": reason["system"], "code": reason["code"],
                                            "display": reason["display"]}], "text": reason["text"][lang]}}
    ordered = _newest_first(rules, resources)
    return {"title": section.title[lang], "code": coded, "text": section_text(rules, ordered, lang, names),
            "entry": [{"reference": f"{base}/{r['resourceType']}/{r['id']}"} for r in ordered]}


def _newest_first(rules: IpsRules, resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """By clinical date, newest first (undated last), then by key: the same summary twice reads the same."""
    def date(resource: dict[str, Any]) -> str:
        for path in rules.columns[resource["resourceType"]].get("date", ()):
            value: Any = resource
            for step in path.split("."):
                value = value.get(step) if isinstance(value, dict) else None
            if isinstance(value, str):
                return value
        return ""

    by_key = sorted(resources, key=lambda r: (r["resourceType"], r["id"]))
    return sorted(by_key, key=date, reverse=True) if by_key else by_key


def _confidentiality(resources: Iterable[dict[str, Any]]) -> str:
    """The most restricted confidentiality label among what the document holds (N when none says)."""
    level = _LEVELS.index("N")
    for resource in resources:
        for label in (resource.get("meta") or {}).get("security") or []:
            if isinstance(label, dict) and label.get("system") == CONFIDENTIALITY and label.get("code") in _LEVELS:
                level = max(level, _LEVELS.index(label["code"]))
    return _LEVELS[level]


_HUB_NAME = "Ho Chi Minh City health interoperability hub"


def _hub_device(session: Session) -> dict[str, Any]:
    """The hub as the document's author: a software Device, the same id for every summary this hub makes."""
    device_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{session.base_url}/Device/fhir-hub"))
    return {"resourceType": "Device", "id": device_id,
            "identifier": [{"system": f"{HUB}/sid/device", "value": "fhir-hub"}],
            "deviceName": [{"name": _HUB_NAME, "type": "user-friendly-name"}],
            "version": [{"value": __version__}]}


def _as_uuid(rid: str) -> str:
    """An id as a UUID for a ``urn:uuid`` (the hub's ids are UUIDs; another factory's are hashed into one)."""
    try:
        return str(uuid.UUID(rid))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, rid))

