"""Rows of an inner table as plain ``{element: text}`` dicts, with QĐ 4210 names already renamed.

Wrapper names differ between HIS vendors and decisions, so rows are found by the detail element's name
anywhere below the root and, failing that, as the elements that carry the table's marker fields. Only leaf
children are read: every MoH field is a leaf. Values are NFC-normalised (Vietnamese typed with combining
marks equals the precomposed spelling, so search and matching see one form) and stripped.
"""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET

from adapters.moh_xml.codes import Row, current_names, layout
from adapters.moh_xml.xmlsafe import descendants, local


def table_rows(loai: str, root: ET.Element) -> list[Row]:
    spec = layout(loai) or {"path": [], "markers": []}
    found: list[ET.Element] = list(descendants(root, spec["path"][-1])) if spec["path"] else []
    if not found:
        markers = set(spec["markers"])
        found = [e for e in root.iter() if any(local(child.tag) in markers for child in e)]
    return [current_names(loai, _leaves(element)) for element in found]


def _leaves(element: ET.Element) -> Row:
    return {local(child.tag): unicodedata.normalize("NFC", child.text or "").strip()
            for child in element if len(child) == 0 and local(child.tag)}


def row_keys(rows: list[Row]) -> list[str]:
    """A stable key per row for its idempotency identifier: ``STT`` when every row has a distinct one (the
    sender's own numbering survives re-exports that reorder rows), else the 1-based position."""
    numbers = [row.get("STT", "") for row in rows]
    if all(numbers) and len(set(numbers)) == len(numbers):
        return numbers
    return [str(i) for i in range(1, len(rows) + 1)]


def split_list(value: str | None) -> list[str]:
    """A MoH list (``I10;E11.9``): items stripped, empties dropped, order kept (several cards and their
    validity dates are parallel lists). A comma is accepted too: no code, card or date contains one."""
    items = (item.strip() for item in (value or "").replace(",", ";").split(";"))
    return [item for item in items if item]
