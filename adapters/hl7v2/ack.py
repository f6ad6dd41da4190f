"""HL7 v2 acknowledgements: what the ingest service answers a sender, message by message.

Built from the original MSH read by plain splitting, so that a message too broken to parse still gets its
AR naming its control id (senders resend until they get an answer). MSA-1 is AA when the message was
accepted, AE when it was read but refused (a rejected record), AR when it could not be read at all. The
error text goes in ERR-8 (v2.5+) and MSA-3 (read by older receivers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from adapters.base import Problem
from adapters.hl7v2.adapter import record_key
from adapters.hl7v2.er7 import Encoding, Segment, decode, msh_fields, split_messages
from adapters.hl7v2.parse import parse

_VIETNAM = timezone(timedelta(hours=7))


def ack(message_bytes: bytes, *, accepted: bool, error: str | None = None) -> bytes:
    """The ACK of one message (segments separated by CR, no MLLP framing). Never raises."""
    try:
        text = decode(message_bytes)[0]
    except Exception:
        text = ""
    start = text.find("MSH")
    text = text[start:] if start >= 0 else ""
    msh = msh_fields(text) if text.startswith("MSH") and len(text) > 3 else Segment("MSH", (), Encoding())
    code = "AA" if accepted else "AE" if _readable(text) else "AR"
    fields = ["MSH", "^~\\&",
              _copy(msh, 5), _copy(msh, 6), _copy(msh, 3), _copy(msh, 4),
              datetime.now(_VIETNAM).strftime("%Y%m%d%H%M%S%z"), "",
              "ACK^" + _escape(msh.get(9, 2)) + "^ACK" if msh.get(9, 2) else "ACK",
              uuid.uuid4().hex[:20], _escape(msh.get(11)) or "P", _escape(msh.get(12)) or "2.5"]
    segments = ["|".join(fields)]
    message = _escape(" ".join((error or "").split()))
    segments.append("|".join(["MSA", code, _escape(msh.get(10)), message if code != "AA" else ""]).rstrip("|"))
    if code != "AA":
        error_code = "207^Application internal error^HL70357" if code == "AE" else "102^Data type error^HL70357"
        segments.append("|".join(["ERR", "", "", error_code, "E", "", "", "", message]))
    return "\r".join(segments).encode("utf-8") + b"\r"


def acknowledgements(payload: bytes, rejected: Iterable[Problem], *, max_chars: int) -> bytes:
    """One ACK per message of ``payload``, in order (CR LF between them): AA for a message whose record key
    (``record_key``) no problem of ``rejected`` names (it was stored, or kept only in the archive), else AE
    or AR with the problem (``field: message``, at most ``max_chars``). Parses the refused messages again
    (to tell AE from AR), so the hub runs it off its event loop, as it does mapping."""
    errors = {p.record: p.text(max_chars) for p in rejected}
    acks = []
    for i, message in enumerate(split_messages(payload).messages):
        error = errors.get(record_key(message, i))
        acks.append(ack(message.encode(), accepted=error is None, error=error))
    return b"\r\n".join(acks)


def _readable(text: str) -> bool:
    try:
        parse(text.split("\rMSH", 1)[0])
    except Exception:  # Unreadable, or anything hl7apy raises
        return False
    return True


def _copy(msh: Segment, field_no: int) -> str:
    """An MSH field of the original as HD components (namespace^id^type), re-escaped for the ACK."""
    value = msh.first(field_no)
    parts = [_escape(value.get(n)) for n in (1, 2, 3)]
    return "^".join(parts).rstrip("^")


def _escape(text: str) -> str:
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
    return out.replace("~", "\\R\\").replace("\r", " ").replace("\n", " ")
