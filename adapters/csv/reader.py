"""Reading a clinic's CSV bytes: encoding, delimiter, header names, rows with their line numbers.

Clinics export from Excel or from their vendor package: UTF-8 with or without a BOM, UTF-16 ("Unicode
text", tab-separated), or the old Windows-1258 code page; ',' or ';' (Excel in a locale whose decimal
separator is ',') or tab. None of this should need a mapping file, so it is sniffed here.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from adapters.normalize import nfc

DELIMITERS = (",", ";", "\t")
_PARENTHESISED = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def fold(name: str) -> str:
    """A header name (or a value-table key) reduced to what a person means by it: NFC, lower case, without
    diacritics, units in brackets dropped, every run of other characters one ``_``.
    ``"Họ và Tên"``, ``"ho va ten"`` and ``"HO_VA_TEN"`` all give ``ho_va_ten``; ``"Mạch (lần/phút)"`` gives
    ``mach``. Data values are never folded: only names used to find a column or a table entry."""
    text = unicodedata.normalize("NFC", name).lower().replace("đ", "d")
    text = _PARENTHESISED.sub(" ", text)
    stripped = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return _NON_WORD.sub("_", stripped).strip("_")


def decode(payload: bytes) -> str:
    """The text of a CSV payload. UTF-8 (BOM stripped) first; UTF-16 when it has a BOM; otherwise
    Windows-1258, which decodes any byte, so reading never fails (NFC later merges its combining tones)."""
    if payload.startswith((b"\xff\xfe", b"\xfe\xff")):
        return payload.decode("utf-16", errors="replace")
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        return payload.decode("cp1258", errors="replace")


def sniff_delimiter(first_line: str) -> str:
    """The delimiter that splits the header line most often (a header has no quoted delimiters in
    practice); ',' when none does, i.e. a one-column file."""
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def first_line(text: str) -> str:
    return text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: ``line`` is the 1-based line in the file where it starts (the header is line 1)."""

    line: int
    values: list[str]


@dataclass(frozen=True, slots=True)
class Table:
    header: list[str]
    rows: list[Row]
    delimiter: str


def read_table(text: str) -> Table:
    """Split ``text`` into a header and rows. Blank lines are skipped; a quoted field may span lines, and the
    row keeps the number of the line it starts on. NUL bytes (binary junk) are dropped, not fatal."""
    text = text.lstrip("\ufeff").replace("\x00", "")
    delimiter = sniff_delimiter(first_line(text))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] = []
    rows: list[Row] = []
    start = 1
    for values in _records(reader):
        line, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if not header:
            header = [nfc(v) for v in values]
            continue
        rows.append(Row(line, values))
    return Table(header, rows, delimiter)


def _records(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's records; an unterminated quote at the end of the file ends the table instead of raising."""
    try:
        yield from reader
    except csv.Error:
        return
