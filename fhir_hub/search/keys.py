"""The one encoding of search-index entries, shared by the indexer (write side) and the queries (read side).

Every entry has a key ``Type|param|value`` under a single-field index, so each lookup is an equality, a
prefix or a range on one indexed string, the shape both MongoDB and nx-27017 answer fast and right:

=============  ====================================  ============================================
type           key value                             other fields
=============  ====================================  ============================================
token          the code (Identifier.value ...)       system (``""`` when the token has none)
token:text     the normalised display or text        (answers ``:text``)
token:of-type  ``type code|identifier value``        the identifier type's system (``:of-type``)
string         the normalised text                   the text as written (``:exact``)
reference      the target id, or the URL as written  the target type (``"@"``: URLs, conditionals)
date           the start, as a sortable number       start and end in microseconds
date:end       the end (ranges longer than a day)    start and end (``gt``/``ge`` over long spans)
number         ``#``                                 the range of the value's precision, the unit
uri            the URI
composite      the first component's code            its system; the second component's value
=============  ====================================  ============================================

One entry per value rather than one per query form: on nx-27017 every stored entry costs write time (they
are packed six to an index document, see ``store/index_docs.py``), so the rarer forms (``system|``, a bare
reference id) pay at query time.
"""

from __future__ import annotations

import hashlib

from fhir_hub.search.normalize import MAX_TIME, MIN_TIME, normalize_text, sortable_time
from fhir_hub.store.records import EntryMatch, SearchEntry

__all__ = ["MAX_TIME", "MIN_TIME"]

_MAX_KEY = 512
COMPARTMENT = "_compartment"
DATE_END = ":end"
TOKEN_TEXT = ":text"
OF_TYPE = ":of-type"
NUMBER = "#"
URL_TARGET = "@"


def escape(part: str) -> str:
    """A value as it appears inside a key (``|`` and ``\\`` escaped)."""
    return part.replace("\\", "\\\\").replace("|", "\\|")


def value_of(key: str) -> str:
    """The value part of a key, unescaped (``Observation|subject|a\\|b`` -> ``a|b``)."""
    raw = key.split("|", 2)[2] if key.count("|") >= 2 else ""
    return raw.replace("\\|", "|").replace("\\\\", "\\")


def make_key(rtype: str, param: str, value: str) -> str:
    key = f"{rtype}|{param}|{escape(value)}"
    if len(key) > _MAX_KEY:  # MongoDB index keys have a size limit; long values are matched by digest
        key = f"{rtype}|{param}|#{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def param_prefix(rtype: str, param: str) -> str:
    return f"{rtype}|{param}|"


# ------------------------------------------------------------------------------------ write side
def token_entry(rtype: str, param: str, system: str | None, value: str) -> SearchEntry:
    return SearchEntry(make_key(rtype, param, value), system or "")


def token_text_entry(rtype: str, param: str, text: str) -> SearchEntry:
    return SearchEntry(make_key(rtype, param + TOKEN_TEXT, normalize_text(text)))


def of_type_entry(rtype: str, param: str, type_system: str | None, type_code: str, value: str) -> SearchEntry:
    return SearchEntry(make_key(rtype, param + OF_TYPE, f"{type_code}|{value}"), type_system or "")


def string_entry(rtype: str, param: str, text: str) -> SearchEntry:
    return SearchEntry(make_key(rtype, param, normalize_text(text)), text=text)


def reference_entry(rtype: str, param: str, reference: str) -> SearchEntry:
    target_type, target = split_reference(reference)
    return SearchEntry(make_key(rtype, param, target), target_type)


def date_entry(rtype: str, param: str, low: int, high: int) -> SearchEntry:
    return SearchEntry(make_key(rtype, param, sortable_time(low)), low=low, high=high)


def date_end_entry(rtype: str, param: str, low: int, high: int) -> SearchEntry:
    return SearchEntry(make_key(rtype, param + DATE_END, sortable_time(high)), low=low, high=high)


def number_entry(rtype: str, param: str, low: float, high: float, unit: str | None, unit_text: str | None
                 ) -> SearchEntry:
    return SearchEntry(make_key(rtype, param, NUMBER), unit, low, high, unit_text)


def uri_entry(rtype: str, param: str, uri: str) -> SearchEntry:
    return SearchEntry(make_key(rtype, param, uri))


def composite_entry(rtype: str, param: str, system: str | None, code: str, low: float | int | None,
                    high: float | int | None, text: str | None) -> SearchEntry:
    return SearchEntry(make_key(rtype, param, code), system or "", low, high, text)


PRESENT = "#present"  # the value of a presence marker (not "\x00": nx-27017 loses strings at a NUL byte)


def presence_entry(rtype: str, param: str) -> SearchEntry:
    """Marks a parameter that has a value the index cannot match (so ``:missing=false`` still finds it)."""
    return SearchEntry(make_key(rtype, param, PRESENT))


def compartment_entry(rtype: str, patient_id: str) -> SearchEntry:
    """The entry saying a resource is in a patient's compartment (narrows a resident's searches)."""
    return SearchEntry(make_key(rtype, COMPARTMENT, f"Patient/{patient_id}"))


def split_reference(reference: str) -> tuple[str, str]:
    """``Patient/1`` (or ``Patient/1/_history/2``) -> ("Patient", "1"); anything else -> ("@", as written)."""
    parts = reference.split("/")
    if "/_history/" in reference and len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 2 and parts[0][:1].isupper() and parts[0].isalpha() and parts[1] and "?" not in reference:
        return parts[0], parts[1]
    return URL_TARGET, reference


# ------------------------------------------------------------------------------------- read side
def token_match(rtype: str, param: str, system: str | None, value: str) -> EntryMatch:
    """The match for one token query; ``system`` None means the query had no ``|``."""
    if system is not None and not value:
        return EntryMatch(param_prefix(rtype, param), system=system, prefix=True)
    return EntryMatch(make_key(rtype, param, value), system=system)


def compartment_match(rtype: str, patient_id: str) -> EntryMatch:
    return EntryMatch(make_key(rtype, COMPARTMENT, f"Patient/{patient_id}"))
