"""Page tokens of searches and histories (FHIR R4 http.html#paging): a keyset position made opaque.

A token comes back from the client, so it is checked like any input before it reaches a query.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any, TypeGuard

import orjson

from fhir_hub.errors import BadRequest
from fhir_hub.fhir.strict_json import strict_loads


def encode_page(position: Any) -> str:
    """An opaque, URL-safe token for a page position (a keyset cursor, not an offset)."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_page(token: str) -> list[Any]:
    """The position a token of ``encode_page`` holds, or a 400 naming ``_page``.

    It must be one of the two positions this server writes, a search position ``["after"|"before", [sort
    values..., key]]`` or a history position ``[lastUpdated, key, version]``, its JSON read by the strict
    reader of request bodies, its integers within 64 bits, and no booleans, nulls, objects or nested lists
    in it. A search also checks its values against the query's sort (``search.execute.position_fits``).
    """
    try:
        position = _floats(strict_loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))))
    except ValueError:  # not base64, not JSON (orjson.JSONDecodeError), or refused (JsonRefused: 2**64...)
        position = None
    if not (_is_search_position(position) or is_history_position(position)):
        raise BadRequest("_page: not a page token issued by this server; follow the Bundle's links",
                         expression=["_page"])
    return position


def _floats(value: Any) -> Any:
    """The strict reader keeps a number orjson wrote as ``1e-5`` as a Decimal; positions compare floats.
    Two levels only, those of a position: anything deeper is refused by shape, never walked."""
    def plain(item: Any) -> Any:
        return float(item) if isinstance(item, Decimal) else item

    if not isinstance(value, list):
        return value
    return [[plain(x) for x in item] if isinstance(item, list) else plain(item) for item in value]


_INT64 = 2**63


def _is_search_position(position: Any) -> TypeGuard[list[Any]]:
    return (isinstance(position, list) and len(position) == 2 and position[0] in ("after", "before")
            and isinstance(position[1], list) and bool(position[1]) and isinstance(position[1][-1], str)
            and all(isinstance(v, str | float) or _is_integer(v, -_INT64) for v in position[1]))


def is_history_position(position: Any) -> TypeGuard[list[Any]]:
    return (isinstance(position, list) and len(position) == 3 and _is_integer(position[0], 0)
            and isinstance(position[1], str) and _is_integer(position[2], 1))


def _is_integer(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value < _INT64
