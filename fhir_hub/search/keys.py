"""The one encoding of search-index keys, shared by the indexer (write side) and the query (read side).

A key is a single scalar string ``Type|param|form|part...`` so that every lookup is an equality on one
single-field index. Token values are stored under three forms so that each of FHIR's token query shapes
is one equality:

=================  ===========================  ==========================
query              meaning                      key
=================  ===========================  ==========================
``sys|val``        value in that system         ``sv|sys|val``
``|val``           value with no system         ``sv||val``
``sys|``           any value in that system     ``s|sys``
``val``            value in any system          ``v|val``
=================  ===========================  ==========================
"""

from __future__ import annotations

import hashlib

_MAX_KEY = 512


def _escape(part: str) -> str:
    return part.replace("\\", "\\\\").replace("|", "\\|")


def make_key(rtype: str, param: str, form: str, *parts: str) -> str:
    key = "|".join((rtype, param, form, *(_escape(p) for p in parts)))
    if len(key) > _MAX_KEY:  # MongoDB index keys have a size limit; long values are matched by digest
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"{rtype}|{param}|#|{digest}"
    return key


def token_index_keys(rtype: str, param: str, system: str | None, value: str | None) -> list[str]:
    """The keys stored for one token (an Identifier or a Coding)."""
    keys = []
    if value:
        keys.append(make_key(rtype, param, "sv", system or "", value))
        keys.append(make_key(rtype, param, "v", value))
    if system:
        keys.append(make_key(rtype, param, "s", system))
    return keys


def token_query_key(rtype: str, param: str, system: str | None, value: str | None) -> str:
    """The key that answers one token query; ``system`` None means no ``|`` was given."""
    if system is None:
        return make_key(rtype, param, "v", value or "")
    if value:
        return make_key(rtype, param, "sv", system, value)
    return make_key(rtype, param, "s", system)
