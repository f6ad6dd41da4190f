"""JSON Patch (RFC 6902) for FHIR PATCH (http.html#patch), checked before it touches anything.

The patch document is checked as a whole first (an array of operations, each with a known ``op`` and a
``path``), so a malformed patch is a 400 that names the operation; applying it to the current content is
a separate step, which the writer repeats if another write wins the race for the resource. A patch that
does not apply (a failed ``test``, a path that is not there) is a 422, as the spec asks for a patch the
server cannot process; its message never quotes the stored content (the library's own messages print the
values it compared). The ``jsonpatch`` library does the applying.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import jsonpatch
import jsonpointer

from fhir_hub.errors import BadRequest, UnprocessableResource
from fhir_hub.fhir.jsonio import loads

JSON_PATCH = "application/json-patch+json"
_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_NEEDS_VALUE = frozenset({"add", "replace", "test"})
_NEEDS_FROM = frozenset({"move", "copy"})

Applier = Callable[[dict[str, Any]], dict[str, Any]]


def json_patch(operations: Any, *, where: str = "JSON Patch") -> Applier:
    """The function that applies ``operations`` to a resource's JSON, once they are known to be well formed."""
    if not isinstance(operations, list) or not operations:
        raise BadRequest(f"{where}: the patch must be a non-empty JSON array of operations")
    for i, op in enumerate(operations):
        if not isinstance(op, dict):
            raise BadRequest(f"{where}: operation {i} is not a JSON object", expression=[f"[{i}]"])
        name = op.get("op")
        if not isinstance(name, str) or name not in _OPS:
            raise BadRequest(f"{where}: operation {i} has op {name!r}; expected one of {', '.join(sorted(_OPS))}",
                             expression=[f"[{i}].op"])
        for member in ("path", *(("from",) if name in _NEEDS_FROM else ())):
            if not isinstance(op.get(member), str) or (op[member] and not op[member].startswith("/")):
                raise BadRequest(f"{where}: operation {i} ({name}) needs a JSON Pointer in {member!r}",
                                 expression=[f"[{i}].{member}"])
            try:
                jsonpointer.JsonPointer(op[member])
            except jsonpointer.JsonPointerException as exc:
                raise BadRequest(f"{where}: operation {i} ({name}): {member!r} is not a valid JSON Pointer ({exc})",
                                 expression=[f"[{i}].{member}"]) from None
        if name in _NEEDS_VALUE and "value" not in op:
            raise BadRequest(f"{where}: operation {i} ({name}) needs a 'value'", expression=[f"[{i}].value"])
    try:
        patch = jsonpatch.JsonPatch(operations)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise BadRequest(f"{where}: {exc}") from None

    def apply(document: dict[str, Any]) -> dict[str, Any]:
        try:
            patched = patch.apply(document)
        except jsonpatch.JsonPatchTestFailed:
            raise UnprocessableResource(f"{where}: a test operation failed; nothing was changed") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, ValueError):
            raise UnprocessableResource(f"{where}: the patch does not apply to the current version (a path it "
                                        "names is not there, or holds another kind of value)") from None
        if not isinstance(patched, dict):
            raise UnprocessableResource(f"{where}: the patch replaces the whole resource with a non-object")
        return patched

    return apply


def binary_json_patch(binary: dict[str, Any], *, where: str) -> Applier:
    """A JSON Patch carried in a Bundle entry, as FHIR R4 carries it: a Binary with the patch as ``data``."""
    if binary.get("contentType") != JSON_PATCH:
        raise BadRequest(f"{where}: a PATCH entry's Binary must have contentType {JSON_PATCH!r}",
                         expression=[f"{where}.contentType"])
    try:
        operations = loads(base64.b64decode(str(binary.get("data", "")), validate=True))
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}.data: not base64 of a JSON Patch document", expression=[f"{where}.data"]) from None
    return json_patch(operations, where=where)
