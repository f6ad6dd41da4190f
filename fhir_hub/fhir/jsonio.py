"""FHIR JSON in and out: strict parsing of request bodies, fast serialisation of stored JSON.

Bodies are parsed with orjson. A UTF-8 byte-order mark is refused rather than skipped: RFC 8259 says a
networked JSON text must not carry one, and a clear 400 tells the integrator exactly what to fix, where a
silent skip would hide a sender that may also mangle other bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_hub.errors import BadRequest

BOM = b"\xef\xbb\xbf"


def parse_json_object(body: bytes, *, what: str = "request body") -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong and where."""
    if not body.strip():
        raise BadRequest(f"The {what} is empty; a FHIR JSON resource was expected")
    if body.startswith(BOM):
        raise BadRequest(
            f"The {what} starts with a UTF-8 byte-order mark (EF BB BF); JSON sent over HTTP must not "
            "carry one (RFC 8259 section 8.1). Remove the first three bytes and send it again."
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The {what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"The {what} must be a JSON object (a FHIR resource), not {type(value).__name__}")
    return value


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def pretty(body: bytes) -> bytes:
    """Re-indent an already serialised document (only done when a client asks with ``_pretty=true``)."""
    return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
