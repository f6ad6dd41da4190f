"""Reading HL7 v2 ER7 text: splitting a payload into messages, and the values of one message's fields.

Why the payload is cut up here and not by hl7apy: senders (and the fixtures) use LF or CRLF between segments
instead of CR, prefix a UTF-8 byte-order mark, leave MLLP framing bytes or blank lines, and batch several
messages in one file. hl7apy expects one clean CR-separated message, so the payload is normalised first
and split on ``MSH`` at the start of a line; each piece is one record.

Why field values are read from the segment text rather than from hl7apy's element tree: hl7apy (1.3.5) names
a field by its position only when the version's definition has it (a field beyond the definition gets the
name ``None``, and ``to_er7`` moves it), drops whitespace-only fields, and names components by datatype
(``CX_4``, ``FN_1``, ``ST``) differently from one version to the next. The message is still parsed by
hl7apy (see ``parse.py``), which checks MSH, the encoding characters, the version and every segment name;
the values are then read positionally with the encoding characters hl7apy found, so ``PID-7`` is field 7
whatever the version says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_MLLP = bytes.maketrans(b"\x0b\x1c", b"\r\r")  # start/end-of-block bytes left by an MLLP listener
_HEX = re.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True, slots=True)
class Encoding:
    """The delimiters a message declares in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def of_msh(cls, line: str) -> Encoding:
        """The delimiters of a raw MSH line; the standard ones for whatever is missing."""
        if len(line) < 4:
            return cls()
        sep = line[3]
        chars = line[4:].split(sep, 1)[0]
        default = "^~\\&"
        chars = chars + default[len(chars):] if len(chars) < 4 else chars
        return cls(sep, chars[0], chars[1], chars[2], chars[3])


def decode(payload: bytes) -> tuple[str, str]:
    """Bytes as text with CR between segments (BOM, MLLP framing, CRLF and LF tolerated), and the charset used.

    UTF-8 is what the hub asks for; a payload that is not is read as Windows-1258 (the Vietnamese Windows code
    page some older HIS still write) rather than rejected, and the caller reports it."""
    data = payload.strip()
    while data.startswith(_BOM):
        data = data[len(_BOM):].lstrip()
    data = data.translate(_MLLP).replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1258", errors="replace"), "cp1258"


@dataclass(frozen=True, slots=True)
class Split:
    messages: list[str]  # each CR-separated, without blank lines
    leading: list[str]  # lines before the first MSH, which belong to no message
    charset: str


def split_messages(payload: bytes) -> Split:
    """The messages of a payload: a new one starts at every line beginning with ``MSH``."""
    text, charset = decode(payload)
    messages: list[list[str]] = []
    leading: list[str] = []
    for line in text.split("\r"):
        line = line.lstrip("\ufeff").rstrip()
        if not line:
            continue
        if line.startswith("MSH") and len(line) > 3:
            messages.append([line])
        elif messages:
            messages[-1].append(line)
        else:
            leading.append(line)
    return Split(["\r".join(m) for m in messages], leading, charset)


def unescape(text: str, enc: Encoding) -> str:
    """Resolve HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\, \\Xhh\\, \\.br\\); formatting and
    character-set switches (\\H\\ \\N\\ \\Cxxyy\\ \\Mxxyyzz\\ \\.sp\\ ...) are dropped."""
    esc = enc.escape
    if not esc or esc not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        end = text.find(esc, i + 1) if text[i] == esc else -1
        if end < 0:
            out.append(text[i])
            i += 1
            continue
        out.append(_escape_sequence(text[i + 1:end], enc))
        i = end + 1
    return "".join(out)


def _escape_sequence(code: str, enc: Encoding) -> str:
    simple = {"F": enc.field, "S": enc.component, "T": enc.subcomponent, "R": enc.repetition, "E": enc.escape}
    if code in simple:
        return simple[code]
    if code == ".br":
        return "\n"
    if code[:1] == "X" and _HEX.fullmatch(code[1:]) and len(code) % 2 == 1:
        return bytes.fromhex(code[1:]).decode("latin-1")
    return ""


@dataclass(frozen=True, slots=True)
class Value:
    """One repetition of a field: components split on demand, values unescaped and stripped.

    HL7's explicit null ``""`` reads as empty: the hub keeps no "delete this" semantics from a message."""

    raw: str
    enc: Encoding

    def component(self, n: int) -> str:
        """Component ``n`` (1-based) still holding its subcomponents, unescaped only at the end by ``get``."""
        parts = self.raw.split(self.enc.component)
        return parts[n - 1] if 0 < n <= len(parts) else ""

    def get(self, n: int = 1, sub: int = 1) -> str:
        subs = self.component(n).split(self.enc.subcomponent)
        text = subs[sub - 1] if 0 < sub <= len(subs) else ""
        text = unescape(text, self.enc).strip()
        return "" if text == '""' else text

    def text(self) -> str:
        """The whole value as text (components joined by a space), for free-text types such as TX and FT."""
        parts = [unescape(p, self.enc).strip() for p in self.raw.split(self.enc.component)]
        return " ".join(p for p in parts if p and p != '""')

    def __bool__(self) -> bool:
        return bool(self.text())


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment; ``field(n)`` is HL7's field n (for MSH, MSH-1 is the field separator itself)."""

    name: str
    fields: tuple[str, ...]
    enc: Encoding

    @classmethod
    def of_line(cls, line: str, enc: Encoding) -> Segment:
        parts = line.split(enc.field)
        name = parts[0]
        if name == "MSH":  # MSH-1 is the separator between "MSH" and MSH-2
            parts = [name, enc.field, *parts[1:]]
        return cls(name, tuple(parts), enc)

    def raw(self, n: int) -> str:
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def reps(self, n: int) -> list[Value]:
        """The non-empty repetitions of field n."""
        raw = self.raw(n)
        if self.name == "MSH" and n <= 2:
            return [Value(raw, self.enc)] if raw else []
        return [v for v in (Value(r, self.enc) for r in raw.split(self.enc.repetition)) if v]

    def first(self, n: int) -> Value:
        reps = self.reps(n)
        return reps[0] if reps else Value("", self.enc)

    def get(self, n: int, component: int = 1, sub: int = 1) -> str:
        """Field n, component, subcomponent of the first repetition, as text."""
        return self.first(n).get(component, sub)


def msh_fields(message: str) -> Segment:
    """The MSH of a message text read without any validation: what the ACK and the record key need even when
    the message cannot be parsed."""
    first = message.split("\r", 1)[0]
    return Segment.of_line(first, Encoding.of_msh(first))
