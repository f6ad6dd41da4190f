"""Parsing untrusted XML with the standard library, safely enough for what the MoH export contains.

The export never has a DTD, so any ``<!DOCTYPE`` or ``<!ENTITY`` is refused before expat sees it: without
a DTD there are no entity declarations, hence no entity expansion ("billion laughs", external entities).
The text must be UTF-8 (the MoH decisions say so); checking that first also stops a UTF-16 payload from
hiding a DOCTYPE from the byte search. Namespaces are dropped from tag names (``local``) because some HIS
put a default namespace on the inner tables and the element names are what the decisions define.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

BOM = b"\xef\xbb\xbf"
_DECLARATIONS = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class XmlProblem(ValueError):
    """The bytes are not XML this adapter will read; the message says why, for a person."""


def parse(data: bytes) -> ET.Element:
    body = data.removeprefix(BOM)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XmlProblem(f"not UTF-8 text (byte {exc.start}); the MoH XML export is UTF-8") from None
    if _DECLARATIONS.search(text):
        raise XmlProblem("DOCTYPE/ENTITY declarations are refused (entity expansion); the MoH export has none")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise XmlProblem(f"malformed XML: {exc}") from None


def local(tag: object) -> str:
    """``{urn:x}MA_LK`` -> ``MA_LK``; comments and processing instructions (non-str tags) -> ``""``."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def descendants(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Every element named ``name`` at or below ``element``, in document order."""
    return (e for e in element.iter() if local(e.tag) == name)


def first_text(element: ET.Element, name: str) -> str | None:
    """The stripped text of the first ``name`` element at or below ``element``; None when absent or empty."""
    found = next(descendants(element, name), None)
    text = (found.text or "").strip() if found is not None else ""
    return text or None
