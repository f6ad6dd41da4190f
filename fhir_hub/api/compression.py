"""gzip both ways (RFC 9110 sections 8.4 and 12.5.3): answers for clients that accept it, bodies from clients
that send it.

**Answers.** A Bundle of FHIR JSON shrinks five- to tenfold, which matters on a district hospital's line.
Answers under ``GZIP_MIN_BYTES`` go as they are: measured here, gzip costs ~35 us for an 800-byte
Patient whatever the level (most of it setting the stream up), about 5% of a read, to save less than a
packet. Only single-message answers of a textual type are compressed (every FHIR answer the hub makes is
one message); anything already encoded or streamed passes through.

**Request bodies.** ``Content-Encoding: gzip`` bodies are inflated as they are read, at most ``_CHUNK``
bytes of output at a time, and the hub's body limit (``FHIR_HUB_MAX_BODY_BYTES``) counts the inflated
bytes: a small compressed body that would inflate to gigabytes is stopped with a 413 once it passes the
limit, having never held more than the limit plus a chunk. The ``Content-Length`` the client sent (of the
compressed bytes) is removed from what the app sees, so no reader checks the wrong length.
"""

from __future__ import annotations

import zlib

from starlette.types import Message, Receive, Send

from fhir_hub.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

GZIP_MIN_BYTES = 1024
_LEVEL = 6  # zlib's default: at these sizes levels 1-6 cost the same (measured), 6 packs a little more
_CHUNK = 64 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_TEXTUAL = (b"application/fhir+json", b"application/json", b"application/fhir+ndjson", b"text/",
            b"application/xml", b"x-application/hl7")


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether ``Accept-Encoding`` takes gzip (``gzip``, ``x-gzip`` or ``*``, not at ``q=0``)."""
    for item in accept_encoding.lower().split(b","):
        name, _, params = item.partition(b";")
        if name.strip() in (b"gzip", b"x-gzip", b"*"):
            q = params.strip()
            if not q.startswith(b"q="):
                return True
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
    return False


def request_decoder(content_encoding: bytes) -> type[GzipBody] | None:
    """How to read a body sent with this ``Content-Encoding`` (None: as it is); 415 for one not supported."""
    encoding = content_encoding.strip().lower()
    if encoding in (b"", b"identity"):
        return None
    if encoding in (b"gzip", b"x-gzip"):
        return GzipBody
    raise UnsupportedMediaType(f"Content-Encoding {encoding.decode('latin-1')[:40]!r} is not supported; send the "
                               "body as it is or gzip-compressed (Content-Encoding: gzip)",
                               expression=["Content-Encoding"])


class GzipBody:
    """The ASGI ``receive`` of a gzip body: inflated pieces of at most ``_CHUNK`` bytes, ``limit`` in all.
    Raised errors reach the app's error handler from where the handler reads the body."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._inflate = zlib.decompressobj(_GZIP_WBITS)
        self._pending = b""  # compressed bytes not yet inflated
        self._more = True  # the client has more to send
        self._size = 0

    async def __call__(self) -> Message:
        while not self._pending and self._more:
            message = await self._receive()
            if message["type"] != "http.request":
                return message  # a disconnect
            self._pending = message.get("body", b"")
            self._more = message.get("more_body", False)
        piece = self._inflate_some()
        finished = not self._pending and not self._more
        if finished and not self._inflate.eof:
            raise BadRequest("The gzip-compressed body ends before its compressed data does (truncated)")
        return {"type": "http.request", "body": piece, "more_body": not finished}

    def _inflate_some(self) -> bytes:
        if self._inflate.eof:  # a member ended; bytes after it start another (concatenated files are gzip)
            if not self._pending:
                return b""
            self._inflate = zlib.decompressobj(_GZIP_WBITS)
        try:
            piece = self._inflate.decompress(self._pending, _CHUNK)
        except zlib.error as exc:
            raise BadRequest(f"The body is not valid gzip data (Content-Encoding: gzip): {exc}") from None
        self._pending = self._inflate.unconsumed_tail
        if self._inflate.eof:  # what follows the member's end is the next member's
            self._pending = self._inflate.unused_data + self._pending
        self._size += len(piece)
        if self._size > self._limit:
            raise PayloadTooLarge(f"The request body inflates to more than this server's limit of {self._limit:,} "
                                  "bytes (FHIR_HUB_MAX_BODY_BYTES, counted after gzip decompression)")
        return piece


class GzipAnswer:
    """The ASGI ``send`` compressing a single-message textual answer of at least ``GZIP_MIN_BYTES``."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        start, self._start = self._start, None
        if start is None:  # already decided
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        if message.get("more_body", False) or len(body) < GZIP_MIN_BYTES or not _compressible(start):
            await self._send(start)
            await self._send(message)
            return
        packed = zlib.compress(body, _LEVEL, wbits=_GZIP_WBITS)
        headers = [(k, v) for k, v in start.get("headers", ()) if k != b"content-length"]
        headers += [(b"content-encoding", b"gzip"), (b"content-length", str(len(packed)).encode()),
                    (b"vary", b"Accept-Encoding")]
        await self._send({**start, "headers": headers})
        await self._send({**message, "body": packed})


def _compressible(start: Message) -> bool:
    content_type = b""
    for name, value in start.get("headers", ()):
        if name == b"content-encoding":
            return False
        if name == b"content-type":
            content_type = value
    return content_type.startswith(_TEXTUAL)
