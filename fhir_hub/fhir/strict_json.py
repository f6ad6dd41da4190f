"""JSON from outside the hub, read strictly: what a JSON parser takes but FHIR forbids is refused by name.

orjson refuses invalid UTF-8, lone surrogates, unescaped control characters, NaN and Infinity, numbers that
overflow a double (``1e400``) and nesting past 1024. It accepts, and so this module refuses:

- control characters written as escapes (``\\u0000``, ``\\b``...): FHIR's string type forbids every
  character below U+0020 but tab, carriage return and line feed, and a NUL cuts strings short downstream;
- a key twice in one object: parsers silently keep one value (orjson and Python the last), so a sender and
  the hub could read two different resources from the same bytes;
- numbers a double cannot hold: ``1e-400`` becomes 0, a 20-digit integer a rounded float, and the search
  index (doubles) would disagree with the stored text.

One pass of the standard library's parser does it all, with hooks (which also keep decimals exactly as
written); orjson runs only on what that pass refuses or finds suspect, so that a syntax error reads as it
always has and a lone surrogate is caught. A refusal names the element (``Patient.name[0].given[1]``; ``$``
is the root of a document that is not a resource), found by reading the document once more: only refused
bodies pay for that. Stored JSON is the hub's own and is read by ``jsonio.loads`` without any of this.
"""

from __future__ import annotations

import json
import math
import re
import sys
from decimal import Decimal
from typing import Any

import orjson

_INT64 = 2**63
_ALLOWED_CONTROLS = frozenset("\t\n\r")
# An escaped control character other than tab, LF and CR, or an escaped surrogate (a lone one is no text).
# A false hit (an escaped backslash before "b", a proper surrogate pair) only costs a second look.
_SUSPECT_ESCAPE = re.compile(rb"\\(?:[bf]|u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])|u[dD][89a-fA-F])")


class JsonRefused(ValueError):
    """Well-formed JSON the hub will not take; ``path`` names the element, ``code`` is the issue type."""

    def __init__(self, message: str, path: str | None = None, code: str = "value") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.code = code


class _Fault(Exception):
    """Raised by the parser hooks: something is refused, and the second look will say what and where."""


def strict_loads(body: bytes) -> Any:
    """``body`` as Python values (decimals exact), or JsonRefused, or orjson.JSONDecodeError (not JSON)."""
    try:
        value = json.loads(body.decode(), object_pairs_hook=_object, parse_float=_float, parse_int=_int,
                           parse_constant=_constant)
    except _Fault:
        _explain(body)
        raise JsonRefused("the JSON holds a value the hub refuses") from None  # not reached: _explain raises
    except RecursionError:
        orjson.loads(body)  # past 1024 levels orjson says so
        raise JsonRefused("the JSON is nested too deeply", code="structure") from None
    except ValueError as exc:  # not UTF-8, or not JSON
        orjson.loads(body)  # raises what is wrong, as orjson has always said it
        raise JsonRefused(f"not JSON: {exc}", code="invalid") from None  # not reached: orjson is stricter
    if _SUSPECT_ESCAPE.search(body):
        orjson.loads(body)  # a lone surrogate
        _explain(body)  # a control character
    return value


def number_fault(text: str) -> str | None:
    """Why a JSON number as written cannot be taken, or None."""
    if text in ("NaN", "Infinity", "-Infinity"):
        return f"{text} is not a JSON number"
    shown = text if len(text) <= 32 else f"{text[:16]}... ({len(text)} characters)"
    if not any(c in text for c in ".eE"):
        if len(text) > 20 or not -_INT64 <= int(text) < _INT64:
            return (f"{shown} is out of range: a whole number must fit in 64 bits ({-_INT64} to {_INT64 - 1}); "
                    "write a larger decimal with a fraction or an exponent")
        return None
    value = float(text)
    underflow = value == 0.0 and any(c in "123456789" for c in text.lower().partition("e")[0])
    if math.isinf(value) or underflow or 0.0 < abs(value) < sys.float_info.min:
        return (f"{shown} is out of range: the hub indexes and compares decimals as IEEE 754 doubles, so a "
                f"value other than 0 must lie between {sys.float_info.min!r} and {sys.float_info.max!r} in size")
    return None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Fault
    return obj


def _float(text: str) -> float | Decimal:
    """A float when it gives the text back (and orjson writes it so); else the exact Decimal."""
    if number_fault(text) is not None:
        raise _Fault
    value = float(text)
    return value if repr(value) == text else Decimal(text)


def _constant(text: str) -> Any:
    raise _Fault


def _int(text: str) -> int:
    if len(text) > 18 and number_fault(text) is not None:
        raise _Fault
    return int(text)


# ------------------------------------------------------------------------------------ naming the fault
class _Pairs(list[tuple[str, Any]]):
    """An object as its key/value pairs, repeats kept."""


class _Number(str):
    """A number as written."""


def _explain(body: bytes) -> None:
    """Raise JsonRefused naming the first refused value of ``body``; return when there is none (or ``body``
    is no JSON at all, which the caller reports)."""
    try:
        tree = json.loads(body, object_pairs_hook=_Pairs, parse_float=_Number, parse_int=_Number,
                          parse_constant=_Number)
    except (ValueError, RecursionError):
        return
    rtype = next((v for k, v in tree if k == "resourceType"), None) if isinstance(tree, _Pairs) else None
    stack: list[tuple[Any, str]] = [(tree, _printable(rtype) if isinstance(rtype, str) else "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, _value in node:
                where = f"{path}.{_printable(key)}"
                if (char := _control(key)) is not None:
                    raise JsonRefused(f"the element name holds the control character {char}", where)
                if key in seen:
                    raise JsonRefused(f"the key {key!r} appears twice in one object: JSON keys must be unique "
                                      "(RFC 8259 section 4), and a parser would silently keep one of the values",
                                      where, code="structure")
                seen.add(key)
            stack += [(value, f"{path}.{_printable(key)}") for key, value in reversed(node)]
        elif isinstance(node, list):
            stack += [(value, f"{path}[{i}]") for i, value in reversed(list(enumerate(node)))]
        elif isinstance(node, _Number):
            if (fault := number_fault(node)) is not None:
                raise JsonRefused(fault, path)
        elif isinstance(node, str) and (char := _control(node)) is not None:
            raise JsonRefused(f"the string holds the control character {char}: FHIR strings may hold no "
                              "character below U+0020 but tab, carriage return and line feed", path)


def _control(text: str) -> str | None:
    """The first forbidden control character of ``text`` and where it is, for a message; None if none."""
    for index, char in enumerate(text):
        if char < " " and char not in _ALLOWED_CONTROLS:
            return f"U+{ord(char):04X} (character {index + 1})"
    return None


def _printable(key: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if c < " " else c for c in key)
