"""FHIR JSON in and out: strict parsing of request bodies, fast serialisation of stored JSON.

Bodies are read strictly (``strict_json``: no escaped control characters, no key twice, no number a double
cannot hold), decimals kept exactly as written; stored JSON, the hub's own, is read fast (``loads``). A
UTF-8 byte-order mark at the start is skipped: RFC 8259 (section 8.1) says a networked JSON text must not
carry one but lets a parser ignore it, and clinic systems on Windows send it (issue 21; it was refused
with a 400 before, which only made integrators strip three bytes by hand).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from fhir_hub.errors import BadRequest
from fhir_hub.fhir.strict_json import JsonRefused, strict_loads

BOM = b"\xef\xbb\xbf"


def parse_json_object(body: bytes, *, what: str = "request body") -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong and where."""
    value = parse_json(body, what=what)
    if not isinstance(value, dict):
        raise BadRequest(f"The {what} must be a JSON object (a FHIR resource), not {type(value).__name__}")
    return value


def parse_json(body: bytes, *, what: str = "request body") -> Any:
    """Any JSON value, or a 400 that says what is wrong and where."""
    body = body.removeprefix(BOM)
    if not body.strip():
        raise BadRequest(f"The {what} is empty; a FHIR JSON resource was expected")
    try:
        return strict_loads(body)
    except JsonRefused as exc:
        raise BadRequest(f"The {what} is refused: {exc}", expression=[exc.path] if exc.path else [],
                         code=exc.code) from None
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The {what} is not valid JSON: {exc}") from None


# A number a float would not give back as written: trailing zeros in a fraction (5.40) or an exponent (1e2).
_INEXACT_NUMBER = re.compile(rb"[0-9]\.[0-9]*0(?![0-9])|[0-9][eE][-+]?[0-9]")


def loads(body: bytes | str) -> Any:
    """FHIR JSON as Python values, every decimal exactly as written.

    FHIR decimals keep their precision (``5.40`` is not ``5.4``: it says how exact the measurement was,
    and search ranges depend on it). orjson reads every number as a float, so a text holding a number a
    float would change is read again with ``Decimal`` numbers (after orjson, the strict parser, accepted
    it). The pattern may also match inside a string: that only costs the second parse.
    """
    value = orjson.loads(body)
    if _INEXACT_NUMBER.search(body.encode() if isinstance(body, str) else body):
        value = json.loads(body, parse_float=Decimal)
    return value


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())  # written back exactly as it was read
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, indent: bool = False) -> bytes:
    return orjson.dumps(value, default=_exact, option=orjson.OPT_INDENT_2 if indent else None)


def pretty(body: bytes) -> bytes:
    """Re-indent an already serialised document (only done when a client asks with ``_pretty=true``)."""
    return dumps(loads(body), indent=True)
