"""ICD-10 codes as the hub's rules compare them: one spelling for a code however it was sent, and ranges
written the way the WHO blocks are (``C00-C97``, ``O98.7``, chapter letter ``O``).

Why compare on characters rather than parse a hierarchy: a range's bounds say how precise they are. ``C00-C97``
holds every code whose first three characters lie between C00 and C97 (C97.9 in, C98 out), ``O98.7`` holds that
sub-code and its own sub-codes, and a bare letter holds every code that starts with it. Codes arrive from the MoH
list (``E11.9``), from HL7 v2 senders (``E119``), from hand-typed CSV (``e11. 9``) and with the dagger/asterisk
marks of the dual classification (``A18.0†``); all of them must meet the same range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

_CODE = re.compile(r"[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}")
_LETTER = re.compile(r"[A-Z]")
_MARKS = str.maketrans("", "", ".*\u2020+- \t")  # the dot, dagger/asterisk marks, stray separators


def icd10_key(code: str) -> str | None:
    """An ICD-10 code as the rules compare it (upper case, no dot, no dagger or asterisk: ``b20.1`` ->
    ``B201``); None for text that is no ICD-10 code, which then matches no rule."""
    key = code.upper().translate(_MARKS)
    return key if _CODE.fullmatch(key) else None


def _bound(text: str) -> str | None:
    key = text.upper().translate(_MARKS)
    return key if _LETTER.fullmatch(key) else icd10_key(text)


@dataclass(frozen=True, slots=True)
class CodeRange:
    """ICD-10 codes from ``low`` to ``high`` inclusive, compared on as many characters as the bounds have."""

    low: str
    high: str

    @classmethod
    def parse(cls, text: str) -> Self:
        """``I10-I15``, ``Z89``, ``O98.7``, ``Z71.4-Z71.5`` or a chapter letter ``O``; a ValueError for
        anything else (bounds of different precision, reversed bounds, no code at all)."""
        low, dash, high = text.partition("-")
        first, last = _bound(low), _bound(high if dash else low)
        if first is None or last is None or len(first) != len(last) or first > last:
            raise ValueError(f"{text!r} is not an ICD-10 code, chapter letter or range of codes of one length")
        return cls(first, last)

    def holds(self, key: str) -> bool:
        """Whether the code ``key`` (an ``icd10_key``) lies in the range."""
        head = key[:len(self.low)]
        return len(head) == len(self.low) and self.low <= head <= self.high
