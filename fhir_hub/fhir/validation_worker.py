"""The validation worker: ``python -m fhir_hub.fhir.validation_worker``, spoken to over its stdin and stdout.

A plain child process with a framed protocol rather than ``multiprocessing``: a spawned ``multiprocessing``
child runs the parent's main module again, which breaks any script that embeds the app without an
``if __name__ == "__main__"`` guard (measured: the benchmark harness did). This child imports only the
validation code.

Frames are a 4-byte big-endian length and a payload. The worker first sends ``READY`` once every R4B model
is imported; then, for each request (a JSON head ``[[type, size], ...]`` followed by the resources' bytes),
one byte per resource: 1 valid, 0 refused. The reason of a refusal is found again by the hub, which
validates that resource itself.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

import orjson

FRAME = struct.Struct(">I")
READY = b"ready"


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload)) + payload


def encode_request(items: list[tuple[str, bytes]]) -> bytes:
    head = orjson.dumps([[rtype, len(body)] for rtype, body in items])
    return frame(FRAME.pack(len(head)) + head + b"".join(body for _rtype, body in items))


def decode_request(payload: bytes) -> list[tuple[str, bytes]]:
    (head_size,) = FRAME.unpack_from(payload)
    offset = FRAME.size + head_size
    items = []
    for rtype, size in orjson.loads(payload[FRAME.size:offset]):
        items.append((rtype, payload[offset:offset + size]))
        offset += size
    return items


def verdicts(items: list[tuple[str, bytes]]) -> bytes:
    from fhir_hub.fhir.jsonio import loads
    from fhir_hub.fhir.validation import validate_resource

    found = bytearray()
    for rtype, body in items:
        try:
            validate_resource(loads(body), expected_type=rtype)
        except Exception:  # noqa: BLE001 - any refusal is validated again in the hub, which reports it
            found.append(0)
        else:
            found.append(1)
    return bytes(found)


def load_models() -> None:
    """Import every R4B model once, so that the first Bundle does not wait for imports."""
    from fhir_hub.fhir.registry import model_class, resource_types

    for name in resource_types():
        model_class(name)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    load_models()
    answers.write(frame(READY))
    answers.flush()
    while (head := _read(requests, FRAME.size)) is not None:
        payload = _read(requests, FRAME.unpack(head)[0])
        if payload is None:
            return
        answers.write(frame(verdicts(decode_request(payload))))
        answers.flush()
    # end of input: the hub closed the pipe (it stopped, or gave up on this worker)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
