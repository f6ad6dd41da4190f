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
from functools import cache

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
    """One data row: ``line`` is the 1-based line in the file where it starts (the header is line 1).
    ``problem`` says why the line could not be read as a row (its values are then empty): the row is
    rejected with it, never dropped."""

    line: int
    values: list[str]
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    header: list[str]
    rows: list[Row]
    delimiter: str
    problem: str | None = None  # the header itself could not be read (the line is named): nothing is mapped


def read_table(text: str) -> Table:
    """Split ``text`` into a header and rows. Blank lines are skipped; a quoted value may span lines, and the
    row keeps the number of the line it starts on. NUL bytes (binary junk) are dropped, not fatal.
    A row whose quoting is broken is a Row with a ``problem``, and reading goes on with the next line."""
    text = text.lstrip("\ufeff").replace("\x00", "")
    delimiter = sniff_delimiter(first_line(text))
    header: list[str] = []
    rows: list[Row] = []
    for row in records(io.StringIO(text, newline="").readlines(), delimiter):
        if row.problem is None and not any(v.strip() for v in row.values):
            continue
        if not header:
            if row.problem is not None:
                return Table([], [], delimiter, f"line {row.line}: {row.problem}")
            header = [nfc(v) for v in row.values]
            continue
        rows.append(row)
    return Table(header, rows, delimiter)


class _Lines:
    """The file's lines for ``csv.reader``, which takes one at a time: ``at`` is the index of the next one,
    so that the reader can be restarted on any line."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.at = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.at >= len(self.lines):
            raise StopIteration
        self.at += 1
        return self.lines[self.at - 1]


FIX = ("quote a value that holds the delimiter, a quote or a line break as a whole, and double every quote "
       "inside it (\"\")")


def records(lines: list[str], delimiter: str) -> Iterator[Row]:
    """Every record of the file, in order, the first being the header.

    Python's csv module reads a quote at the start of a value as the start of a quoted value, which goes on
    over line breaks and delimiters until the next quote: one stray quote swallows the rest of the file into
    one value, often without any error. So a record broken by its quoting is a Row with a ``problem`` on the
    line it starts, and reading starts again on the next line: the rows after it are read as rows.
    """
    feed = _Lines(lines)
    width = 0  # fields of the header, once read
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    while feed.at < len(lines):
        start = feed.at
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem: str | None = _broken(exc, start, feed.at)
        else:
            problem = _misread(values, lines[start:feed.at], delimiter, width, start + 1)
        if problem is not None:
            yield Row(start + 1, [], f"{problem}: {FIX}")
            feed.at = start + 1
            reader = csv.reader(feed, delimiter=delimiter, strict=True)
            continue
        if not width and any(v.strip() for v in values):
            width = len(values)
        yield Row(start + 1, values)


def _broken(exc: csv.Error, start: int, end: int) -> str:
    if str(exc) == "unexpected end of data":
        return "a quote opened on this line is never closed (the file ends inside it): a stray quote?"
    if end - start <= 1:
        return f"a quoted value is followed by more text before the next delimiter ({exc})"
    return f"a quote opened on this line is still open on line {end} ({exc}): a stray quote?"


def _misread(values: list[str], lines: list[str], delimiter: str, width: int, first: int) -> str | None:
    """Why a record the csv module read is not one row as its sender meant it, or None.

    Its text must be well-formed CSV (RFC 4180): a quote inside a value that is not quoted as a whole is
    a stray, and it is also what is left of a quoted value that an earlier stray quote ran into. A record
    over several lines is one row with a value that spans lines (Excel's Alt+Enter) only when it has the
    header's number of fields and no line inside a value holds as many delimiters as a row (a swallowed row).
    """
    text = lines[0] if len(lines) == 1 else "".join(lines)
    if '"' in text and not _well_formed(delimiter).fullmatch(text.rstrip("\r\n")):
        where = "on this line" if len(lines) == 1 else f"between this line and line {first + len(lines) - 1}"
        return f"a quote {where} is inside a value that is not quoted as a whole"
    if len(lines) == 1:
        return None
    opened = f"a quote opened on this line is closed only on line {first + len(lines) - 1}"
    if width and len(values) != width:
        return f"{opened}, leaving a row of {len(values)} fields where the header has {width}: a stray quote?"
    if width > 1 and any(part.count(delimiter) >= width - 1 for v in values for part in _LINE_BREAK.split(v)[1:]):
        return f"{opened}, over lines that read as rows of their own: a stray quote?"
    return None


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@cache
def _well_formed(delimiter: str) -> re.Pattern[str]:
    """A record as RFC 4180 writes it: each value either quoted (inner quotes doubled) or free of quotes."""
    d = re.escape(delimiter)
    value = rf'(?:"(?:[^"]|"")*"|[^"{d}\r\n]*)'
    return re.compile(rf"{value}(?:{d}{value})*")
