"""The one encoding of search-index entries, shared by the indexer (write side) and the query (read side).

An entry is a key, ``Type|param|value``, plus for tokens the system the value belongs to. Every lookup is
an equality on the key's single-field index, narrowed by the system when the query names one:

=================  ===========================  ======================================
query              meaning                      entry match
=================  ===========================  ======================================
``sys|val``        value in that system         key ``T|p|val``, system ``sys``
``|val``           value with no system         key ``T|p|val``, system ``""``
``val``            value in any system          key ``T|p|val``
``sys|``           any value in that system     keys starting ``T|p|``, system ``sys``
=================  ===========================  ======================================

One entry per token, not one per query form: on nx-27017 every index document costs about as much as
the resource's own insert, so the rare ``sys|`` form pays with a prefix scan instead of every write
paying for an extra document.
"""

from __future__ import annotations

import hashlib

from fhir_hub.store.records import EntryMatch, SearchEntry

_MAX_KEY = 512


def _escape(part: str) -> str:
    return part.replace("\\", "\\\\").replace("|", "\\|")


def make_key(rtype: str, param: str, value: str) -> str:
    key = f"{rtype}|{param}|{_escape(value)}"
    if len(key) > _MAX_KEY:  # MongoDB index keys have a size limit; long values are matched by digest
        key = f"{rtype}|{param}|#{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def token_entry(rtype: str, param: str, system: str | None, value: str) -> SearchEntry:
    """The entry stored for one token (an Identifier or a Coding) that has a value."""
    return SearchEntry(make_key(rtype, param, value), system or "")


def token_match(rtype: str, param: str, system: str | None, value: str) -> EntryMatch:
    """The match for one token query; ``system`` None means the query had no ``|``."""
    if system is not None and not value:
        return EntryMatch(f"{rtype}|{param}|", system=system, prefix=True)
    return EntryMatch(make_key(rtype, param, value), system=system)


COMPARTMENT = "_compartment"


def compartment_entry(rtype: str, patient_id: str) -> SearchEntry:
    """The entry saying a resource is in a patient's compartment (narrows a resident's searches)."""
    return SearchEntry(make_key(rtype, COMPARTMENT, f"Patient/{patient_id}"))


def compartment_match(rtype: str, patient_id: str) -> EntryMatch:
    return EntryMatch(make_key(rtype, COMPARTMENT, f"Patient/{patient_id}"))
