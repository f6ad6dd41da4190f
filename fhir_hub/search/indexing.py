"""Search-index entries extracted from a resource when it is written.

Every R4 search parameter of the resource's type is evaluated (its expression compiled once, see
``params``) and each value becomes entries by the parameter's type (see ``keys`` for their encoding), plus
the Patient-compartment entries that narrow a resident's searches. Every entry of a resource in a
patient's compartment is also keyed within that compartment (``SearchEntry.scope``), so that a search for
one patient's records reads that patient's entries only. ``_id`` and ``_lastUpdated`` need no entries: the
current document's key and ``ts`` answer them. The function is pure, so the store can recompute entries
from stored JSON when it repairs a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from fhir_hub.fhir.compartment import patient_ids
from fhir_hub.search import keys
from fhir_hub.search.fhirpath import Typed
from fhir_hub.search.normalize import date_range, decimal_range, normalize_text
from fhir_hub.search.params import SearchParam, params_for
from fhir_hub.store.records import SearchEntry

NOT_INDEXED = frozenset({"_id", "_lastUpdated"})
# Raise when index_keys gives different entries for the same resource: the hub then recomputes every
# stored resource's entries at its next start (2: compartment keys, :text and :of-type entries; 3: entries
# packed several to a document, see store/index_docs.py; 4: every deriver's documents, the Patients' match
# blocks added, see store/match_blocks.py; 5: the Patients' links to their masters, store/patient_links.py,
# masters no longer filed in match blocks; 6: each current version's access facts, fhir/access_facts.py;
# 7: dates without a zone read in the hub's zone, not UTC, fhir/instant.py; 8: the hub's own search
# parameters, profiles/hub/search-parameters.json: the address's ward and district, a Flag's code and status;
# 9: each live version's access facts on its index documents, store/index_docs.py, read by consent-judged searches,
# and each linked Patient's birth date on its link, store/patient_links.py, read by consent look-ups).
INDEX_FORMAT = 9
_LONG_SPAN = 86_400_000_000  # a date range longer than a day also gets an entry keyed by its end


def index_format(time_zone: str) -> str:
    """What the stored entries' meaning depends on, as the store records it: the indexer's format and the zone
    zone-less dates were read in (a changed ``FHIR_HUB_TIME_ZONE`` moves every local date's range)."""
    return f"{INDEX_FORMAT} {time_zone}"


def index_keys(rtype: str, resource: dict[str, Any]) -> frozenset[SearchEntry]:
    found: set[SearchEntry] = set()
    for code, param in params_for(rtype).items():
        if code in NOT_INDEXED:
            continue
        if param.type == "composite":
            found.update(_composite_entries(rtype, param, resource))
            continue
        values = [typed for path in param.paths for typed in path.evaluate(resource)]
        entries = {entry for typed in values for entry in entries_for(rtype, code, param.type, typed)}
        if values and not entries:  # e.g. a CodeableConcept with text only: present, matching no value
            entries.add(keys.presence_entry(rtype, code))
        found.update(entries)
        if param.type == "token":
            found.update(entry for typed in values for entry in _token_extras(rtype, code, typed))
    patients = sorted(patient_ids(rtype, resource))
    scoped = {entry for base in found for entry in _scoped(base, patients)}
    scoped.update(keys.compartment_entry(rtype, pid) for pid in patients)
    return frozenset(scoped)


def _scoped(entry: SearchEntry, patients: list[str]) -> Iterator[SearchEntry]:
    """The entry under the first patient's compartment, and a copy for each further patient's."""
    if not patients:
        yield entry
        return
    key, system, low, high, text = entry.key, entry.system, entry.low, entry.high, entry.text
    yield SearchEntry(key, system, low, high, text, patients[0])  # not dataclasses.replace: 5x slower
    for patient in patients[1:]:
        yield SearchEntry(key, system, low, high, text, patient, True)


def entries_for(rtype: str, code: str, param_type: str, typed: Typed) -> Iterator[SearchEntry]:
    value, type_name = typed.value, typed.type
    if param_type == "token":
        for system, token in tokens(value, type_name):
            yield keys.token_entry(rtype, code, system, token)
    elif param_type == "string":
        for text in strings(value):
            yield keys.string_entry(rtype, code, text)
    elif param_type == "reference":
        for target in references(value):
            yield keys.reference_entry(rtype, code, target)
    elif param_type == "date":
        for low, high in dates(value):
            yield keys.date_entry(rtype, code, low, high)
            if high - low > _LONG_SPAN:
                yield keys.date_end_entry(rtype, code, low, high)
    elif param_type in ("number", "quantity"):
        for least, most, unit, unit_text in quantities(value):
            yield keys.number_entry(rtype, code, least, most, unit, unit_text)
    elif param_type == "uri" and isinstance(value, str) and value:
        yield keys.uri_entry(rtype, code, value)


def _token_extras(rtype: str, code: str, typed: Typed) -> Iterator[SearchEntry]:
    """The entries ``:text`` (a code's words) and ``:of-type`` (an identifier's type and value) look up."""
    for text in token_texts(typed.value):
        yield keys.token_text_entry(rtype, code, text)
    value = typed.value
    if typed.type == "Identifier" and isinstance(value, dict) and isinstance(value.get("value"), str):
        for system, type_code in tokens(value.get("type") or {}, "CodeableConcept"):
            yield keys.of_type_entry(rtype, code, system, type_code, value["value"])


def _composite_entries(rtype: str, param: SearchParam, resource: dict[str, Any]) -> Iterator[SearchEntry]:
    """One entry per item and pair of values: the first component's token, the second's value."""
    for root in param.roots:
        if len(root.components) != 2 or root.components[0].type != "token":
            continue
        first, second = root.components
        for item in root.path.evaluate(resource):
            heads = [t for path in first.paths for v in path.evaluate(item.value) for t in tokens(v.value, v.type)]
            tails = [v for path in second.paths for v in path.evaluate(item.value)]
            for system, token in heads:
                for tail in tails:
                    for low, high, text in _second_component(second.type, tail):
                        yield keys.composite_entry(rtype, param.code, system, token, low, high, text)


def _second_component(param_type: str, typed: Typed) -> Iterator[tuple[Any, Any, str | None]]:
    if param_type == "token":
        for system, token in tokens(typed.value, typed.type):
            yield None, None, f"{system or ''}|{token}"
    elif param_type == "string":
        for text in strings(typed.value):
            yield None, None, normalize_text(text)
    elif param_type == "date":
        for low, high in dates(typed.value):
            yield low, high, None
    elif param_type in ("quantity", "number"):
        for least, most, unit, _unit_text in quantities(typed.value):
            yield least, most, unit


# ----------------------------------------------------------------------------------- values by type
def tokens(value: Any, type_name: str) -> Iterator[tuple[str | None, str]]:
    """(system, code) pairs of a token-valued element."""
    if isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str | int):
        if value != "":
            yield None, str(value)
    elif isinstance(value, dict):
        if "coding" in value or type_name == "CodeableConcept":
            for coding in value.get("coding") or []:
                yield from tokens(coding, "Coding")
        elif type_name == "ContactPoint" or ("value" in value and "system" in value and "use" in value
                                              and type_name != "Identifier"):
            if isinstance(value.get("value"), str):
                yield None, value["value"]
        elif isinstance(value.get("value"), str):  # Identifier
            yield _text(value.get("system")), value["value"]
        elif isinstance(value.get("code"), str):  # Coding
            yield _text(value.get("system")), value["code"]


def token_texts(value: Any) -> Iterator[str]:
    """The words beside a code: ``CodeableConcept.text``, each ``Coding.display``, an Identifier type's text."""
    if not isinstance(value, dict):
        return
    if isinstance(value.get("text"), str) and value["text"]:
        yield value["text"]
    if isinstance(value.get("display"), str) and value["display"]:
        yield value["display"]
    for coding in value.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str) and coding["display"]:
            yield coding["display"]
    if isinstance(value.get("type"), dict):
        yield from token_texts(value["type"])


def strings(value: Any) -> Iterator[str]:
    """The text of a string-valued element: HumanName and Address contribute each of their parts."""
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        for name in ("text", "family", "given", "prefix", "suffix", "line", "city", "district", "state",
                     "postalCode", "country", "display"):
            part = value.get(name)
            for text in part if isinstance(part, list) else [part]:
                if isinstance(text, str) and text:
                    yield text


def references(value: Any) -> Iterator[str]:
    if isinstance(value, str):  # canonical
        if value:
            yield value
    elif isinstance(value, dict):
        if isinstance(value.get("reference"), str) and value["reference"]:
            yield value["reference"]
        elif isinstance(value.get("resourceType"), str) and isinstance(value.get("id"), str):
            yield f"{value['resourceType']}/{value['id']}"


def dates(value: Any) -> Iterator[tuple[int, int]]:
    if isinstance(value, str):
        found = date_range(value)
        if found:
            yield found
    elif isinstance(value, dict):
        if "start" in value or "end" in value:  # Period
            start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
            end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
            if start or end:
                yield (start[0] if start else keys.MIN_TIME), (end[1] if end else keys.MAX_TIME)
        for event in value.get("event") or []:  # Timing
            yield from dates(event)
        bounds = (value.get("repeat") or {}).get("boundsPeriod")
        if bounds:
            yield from dates(bounds)


def quantities(value: Any) -> Iterator[tuple[float, float, str | None, str | None]]:
    """(low, high, system|code, unit) of a number or Quantity (Range: its two ends)."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        found = decimal_range(value)
        if found:
            yield found[0], found[1], None, None
    elif isinstance(value, dict):
        if "value" in value:
            found = decimal_range(value["value"])
            if found:
                unit = f"{value.get('system') or ''}|{value.get('code') or ''}" if value.get("code") else None
                yield found[0], found[1], unit, _text(value.get("unit"))
        for end in ("low", "high"):
            if isinstance(value.get(end), dict):
                yield from quantities(value[end])


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
