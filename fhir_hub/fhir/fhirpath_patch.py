"""FHIRPath Patch (R4 fhirpatch.html): a ``Parameters`` resource whose ``operation`` parameters change a
resource at places named by FHIRPath.

Operations: ``add`` (``path`` names one element, ``name`` the child to add, ``value`` the content),
``insert`` (into the list ``path`` names, at ``index``), ``delete`` (the one element ``path`` names, if
any), ``replace`` (the one element ``path`` names) and ``move`` (within the list ``path`` names, from
``source`` to ``destination``). A ``value`` is either a typed ``value[x]`` or, for an element without a
data type of its own (a backbone element), a set of ``part``s named after its children.

Paths are the navigational subset of FHIRPath that patches use in practice: element names (a choice
element by its base name, ``value`` for ``valueCoding``), ``[n]``, ``first()``, ``last()``,
``extension('url')`` and ``where(criteria)``, whose criteria may be any FHIRPath (evaluated by fhirpathpy
on the element). Anything else is refused up front with a 400 that names the operation. As for JSON
Patch, a malformed patch is a 400 and a patch that does not apply to the current version is a 422; the
result is validated by the writer like any update.

The R4B models tell which elements repeat (``add`` to a list appends, to a single element that is already
there fails) and what the children of a new backbone element are.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

import fhirpathpy
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from fhir_hub.errors import BadRequest, UnprocessableResource
from fhir_hub.fhir.patch import Applier
from fhir_hub.fhir.registry import model_class

_NEEDS = {"add": ("path", "name", "value"), "insert": ("path", "index", "value"), "delete": ("path",),
          "replace": ("path", "value"), "move": ("path", "source", "destination")}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEXES = re.compile(r"(?:\[(\d+)\])*")
_FUNCTION = re.compile(r"(?P<fn>where|extension|first|last)\((?P<arg>.*)\)", re.DOTALL)


# ------------------------------------------------------------------------------------------------- paths
@dataclass(frozen=True, slots=True)
class _Child:
    name: str


@dataclass(frozen=True, slots=True)
class _Index:
    position: int  # -1: last()


@dataclass(frozen=True, slots=True)
class _Where:
    criteria: Any  # a compiled fhirpathpy expression


@dataclass(frozen=True, slots=True)
class _ExtensionUrl:
    url: str


_Segment = _Child | _Index | _Where | _ExtensionUrl


def _split(path: str) -> list[str]:
    """Top-level ``.``-separated parts; dots inside parentheses or quotes stay where they are."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(path):
        if quote:
            if char == quote and path[i - 1] != "\\":
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "." and depth == 0:
            parts.append(path[start:i])
            start = i + 1
    parts.append(path[start:])
    return parts


def parse_path(path: str, *, where: str) -> tuple[str | None, tuple[_Segment, ...]]:
    """(the resource type the path starts with, or None; the steps below it). Raises BadRequest."""
    if not path.strip():
        raise BadRequest(f"{where}: the path is empty", expression=[where])
    segments: list[_Segment] = []
    root: str | None = None
    for n, raw in enumerate(_split(path.strip())):
        part = raw.strip()
        head = part.split("[", 1)[0]
        indexes = part[len(head):]
        if not _INDEXES.fullmatch(indexes):
            head, indexes = part, ""
        if n == 0 and head[:1].isupper() and _NAME.fullmatch(head):
            root = head
        elif _NAME.fullmatch(head):
            segments.append(_Child(head))
        elif (fn := _FUNCTION.fullmatch(head)) is not None:
            segments.append(_function(fn["fn"], fn["arg"].strip(), path, where))
        else:
            raise BadRequest(f"{where}: {part!r} in path {path!r} is not supported (element names, [n], first(), "
                             "last(), extension('url') and where(...) are)", expression=[where], code="not-supported")
        segments.extend(_Index(int(i)) for i in re.findall(r"\[(\d+)\]", indexes))
    return root, tuple(segments)


def _function(name: str, argument: str, path: str, where: str) -> _Segment:
    if name in ("first", "last"):
        if argument:
            raise BadRequest(f"{where}: {name}() takes no argument in path {path!r}", expression=[where])
        return _Index(0 if name == "first" else -1)
    if name == "extension":
        if len(argument) < 2 or argument[0] != "'" or argument[-1] != "'":
            raise BadRequest(f"{where}: extension() needs a quoted URL in path {path!r}", expression=[where])
        return _ExtensionUrl(argument[1:-1])
    try:
        return _Where(fhirpathpy.compile(argument))
    except Exception as exc:  # noqa: BLE001 - fhirpathpy raises whatever its parser meets
        raise BadRequest(f"{where}: the criteria of where() in path {path!r} are not FHIRPath ({exc})",
                         expression=[where]) from None


@dataclass(frozen=True, slots=True)
class _Location:
    """One element the path reached: ``parent[key]``, where ``parent`` is an object or a list.

    ``owner``/``owner_key``: the object and key holding the list when ``parent`` is one; ``base``: the
    name the path used (``value`` for a ``valueCoding`` key); ``model``: the R4B class of the element's
    content (None for primitives); ``holder``: that of the object the element belongs to."""

    parent: Any
    key: Any
    base: str
    model: type[FHIRAbstractModel] | None
    holder: type[FHIRAbstractModel] | None
    owner: dict[str, Any] | None = None
    owner_key: str | None = None

    @property
    def value(self) -> Any:
        return self.parent[self.key]


def _resolve(document: dict[str, Any], steps: tuple[_Segment, ...]) -> list[_Location]:
    root = _Location({"": document}, "", "", model_class(document["resourceType"]), None)
    found = [root]
    for step in steps:
        if isinstance(step, _Child):
            found = [child for loc in found for child in _children(loc, step.name)]
        elif isinstance(step, _ExtensionUrl):
            found = [c for loc in found for c in _children(loc, "extension")
                     if isinstance(c.value, dict) and c.value.get("url") == step.url]
        elif isinstance(step, _Index):
            found = [found[step.position]] if found and step.position < len(found) else []
        else:
            found = [loc for loc in found if _true(step.criteria, loc.value)]
    return found


def _true(criteria: Any, value: Any) -> bool:
    try:
        return criteria(copy.deepcopy(value)) == [True]  # fhirpathpy annotates what it is given
    except Exception as exc:  # noqa: BLE001
        raise UnprocessableResource(f"where() could not be evaluated ({exc})") from None


def _children(loc: _Location, name: str) -> list[_Location]:
    node = loc.value
    if not isinstance(node, dict):
        return []
    if name in node:
        keys = [name]
    else:  # a choice element named by its base name: value -> valueCoding
        keys = [k for k in node if k.startswith(name) and k[len(name):][:1].isupper()]
    found: list[_Location] = []
    for key in keys:
        child = _child_model(loc.model, key)
        value = node[key]
        if isinstance(value, list):
            found += [_Location(value, i, name, child, loc.model, node, key) for i in range(len(value))]
        else:
            found.append(_Location(node, key, name, child, loc.model))
    return found


# ------------------------------------------------------------------------------------------------ models
def _field(model: type[FHIRAbstractModel] | None, key: str) -> Any:
    """The annotation of JSON element ``key`` in ``model``, or None when the model has no such element."""
    if model is None:
        return None
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info.annotation
    return None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the element's own type, whether it repeats) of an Optional[List[X]]-style annotation."""
    repeats = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin in (list, typing.List):  # noqa: UP006 - what the R4B models use
            repeats = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, repeats


def _child_model(model: type[FHIRAbstractModel] | None, key: str) -> type[FHIRAbstractModel] | None:
    element, _ = _unwrap(_field(model, key))
    klass = getattr(element, "get_model_klass", None)
    return klass() if klass is not None else None


def _repeats(model: type[FHIRAbstractModel] | None, key: str) -> bool:
    return _unwrap(_field(model, key))[1]


# ------------------------------------------------------------------------------------------------ values
@dataclass(frozen=True, slots=True)
class _Value:
    """A ``value`` parameter: typed (``type`` the suffix of ``value[x]``, e.g. "Coding") or built of parts."""

    content: Any
    type: str | None  # None: built from parts


def _read_value(part: dict[str, Any], where: str) -> _Value:
    typed = [k for k in part if k.startswith("value") and k[5:][:1].isupper()]
    if typed:
        return _Value(part[typed[0]], typed[0][5:])
    if isinstance(part.get("part"), list):
        return _Value(part["part"], None)
    raise BadRequest(f"{where}: the value needs a value[x] or parts", expression=[where])


def _content(value: _Value, model: type[FHIRAbstractModel] | None, where: str) -> Any:
    """The JSON of a value; parts become an object of the element's children (lists where they repeat)."""
    if value.type is not None:
        return value.content
    built: dict[str, Any] = {}
    for i, part in enumerate(value.content):
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise BadRequest(f"{where}.part[{i}]: each part needs the name of an element", expression=[where])
        inner = _read_value(part, f"{where}.part[{i}]")
        key = name if inner.type is None or _field(model, name) is not None else f"{name}{inner.type}"
        item = _content(inner, _child_model(model, key), f"{where}.part[{i}]")
        if _repeats(model, key):
            built.setdefault(key, []).append(item)
        elif key in built:
            raise UnprocessableResource(f"{where}: {name!r} is given twice but does not repeat")
        else:
            built[key] = item
    return built


# -------------------------------------------------------------------------------------------- operations
@dataclass(frozen=True, slots=True)
class _Operation:
    type: str
    path: str
    root: str | None
    steps: tuple[_Segment, ...]
    where: str
    name: str | None = None
    value: _Value | None = None
    index: int | None = None
    source: int | None = None
    destination: int | None = None


def fhirpath_patch(parameters: Any, *, where: str = "FHIRPath Patch") -> Applier:
    """The function applying a FHIRPath Patch to a resource, once the patch is known to be well formed."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise BadRequest(f"{where}: a FHIRPath Patch is a Parameters resource", expression=[where])
    items = parameters.get("parameter", [])  # none: the patch changes nothing (HL7's "No Difference" case)
    if not isinstance(items, list):
        raise BadRequest(f"{where}: Parameters.parameter must be a list of operations",
                         expression=[f"{where}.parameter"])
    operations = [_read_operation(item, f"{where}.parameter[{i}]") for i, item in enumerate(items)]

    def apply(document: dict[str, Any]) -> dict[str, Any]:
        patched = copy.deepcopy(document)
        for operation in operations:
            _apply(operation, patched)
        _prune(patched)
        return patched

    return apply


def _read_operation(item: Any, where: str) -> _Operation:
    if not isinstance(item, dict) or item.get("name") != "operation" or not isinstance(item.get("part"), list):
        raise BadRequest(f"{where}: each parameter must be an 'operation' with parts", expression=[where])
    parts: dict[str, dict[str, Any]] = {}
    for i, part in enumerate(item["part"]):
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name in parts:
            raise BadRequest(f"{where}.part[{i}]: a part needs a name, once", expression=[f"{where}.part[{i}]"])
        parts[name] = part
    kind = parts.get("type", {}).get("valueCode")
    if kind not in _NEEDS:
        raise BadRequest(f"{where}: type {kind!r} is not one of {', '.join(_NEEDS)}", expression=[f"{where}.part"])
    missing = [n for n in _NEEDS[kind] if n not in parts]
    if missing:
        article = "an" if kind[0] in "aeiou" else "a"
        raise BadRequest(f"{where}: {article} {kind} operation needs {', '.join(missing)}",
                         expression=[f"{where}.part"])
    path = parts["path"].get("valueString")
    if not isinstance(path, str):
        raise BadRequest(f"{where}: path must be a valueString", expression=[f"{where}.part"])
    root, steps = parse_path(path, where=where)
    name = parts["name"].get("valueString") if "name" in parts else None
    if "name" in parts and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise BadRequest(f"{where}: name must be a valueString naming an element", expression=[f"{where}.part"])
    numbers = {}
    for key in ("index", "source", "destination"):
        if key in parts:
            number = parts[key].get("valueInteger")
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise BadRequest(f"{where}: {key} must be a valueInteger of 0 or more", expression=[f"{where}.part"])
            numbers[key] = number
    value = _read_value(parts["value"], f"{where}.value") if "value" in parts else None
    return _Operation(kind, path, root, steps, where, name, value, **numbers)


def _apply(op: _Operation, document: dict[str, Any]) -> None:
    rtype = document.get("resourceType")
    if op.root is not None and op.root not in (rtype, "Resource", "DomainResource"):
        raise UnprocessableResource(f"{op.where}: the path {op.path!r} is for {op.root}, the resource is a {rtype}")
    found = _resolve(document, op.steps)
    if op.type == "delete":
        if len(found) > 1:
            raise UnprocessableResource(f"{op.where}: the path {op.path!r} matches {len(found)} elements; "
                                        "delete removes one")
        if found:
            _remove(found[0])
        return
    if op.type in ("insert", "move"):
        _in_list(op, document)
        return
    if len(found) != 1:
        raise UnprocessableResource(f"{op.where}: the path {op.path!r} matches "
                                    f"{'no element' if not found else f'{len(found)} elements'}; {op.type} needs one")
    target = found[0]
    assert op.value is not None
    if op.type == "replace":
        _replace(op, target)
    else:
        _add(op, target)


def _replace(op: _Operation, target: _Location) -> None:
    assert op.value is not None
    key = target.key
    if isinstance(target.parent, dict) and key != target.base and op.value.type is not None:
        key = target.base + op.value.type  # a choice element takes the type of its new value
        if _field(target.holder, key) is None:
            raise UnprocessableResource(f"{op.where}: {target.base} cannot hold a {op.value.type}")
        del target.parent[target.key]
    target.parent[key] = _content(op.value, target.model, f"{op.where}.value")


def _add(op: _Operation, target: _Location) -> None:
    assert op.value is not None and op.name is not None
    node = target.value
    if not isinstance(node, dict):
        raise UnprocessableResource(f"{op.where}: the path {op.path!r} is a primitive value; add needs an element")
    key = op.name
    if _field(target.model, key) is None and op.value.type is not None:
        key = op.name + op.value.type
    if _field(target.model, key) is None:
        raise UnprocessableResource(f"{op.where}: {op.name!r} is not an element of what {op.path!r} names")
    content = _content(op.value, _child_model(target.model, key), f"{op.where}.value")
    if _repeats(target.model, key):
        node.setdefault(key, []).append(content)
    elif key in node:
        raise UnprocessableResource(f"{op.where}: {op.path}.{key} is already there and does not repeat; use replace")
    else:
        node[key] = content


def _in_list(op: _Operation, document: dict[str, Any]) -> None:
    """insert and move act on the list the path names, which ``insert`` may create (index 0)."""
    if not op.steps or not isinstance(op.steps[-1], _Child):
        raise UnprocessableResource(f"{op.where}: {op.type} needs a path ending in the name of a list")
    holders = _resolve(document, op.steps[:-1])
    name = op.steps[-1].name
    if len(holders) != 1 or not isinstance(holders[0].value, dict):
        raise UnprocessableResource(f"{op.where}: the path {op.path!r} must name one list")
    holder = holders[0]
    if not _repeats(holder.model, name):
        raise UnprocessableResource(f"{op.where}: {op.path!r} is not a repeating element")
    items = holder.value.get(name, [])
    if op.type == "insert":
        assert op.value is not None and op.index is not None
        if op.index > len(items):
            raise UnprocessableResource(f"{op.where}: index {op.index} is past the end of {op.path} ({len(items)} "
                                        "elements)")
        items.insert(op.index, _content(op.value, _child_model(holder.model, name), f"{op.where}.value"))
    else:
        assert op.source is not None and op.destination is not None
        if op.source >= len(items) or op.destination >= len(items):
            raise UnprocessableResource(f"{op.where}: source and destination must be below {len(items)}, the "
                                        f"length of {op.path}")
        items.insert(op.destination, items.pop(op.source))
    holder.value[name] = items


def _prune(node: Any) -> bool:
    """Drop the objects and lists a deletion left empty, up to the resource: FHIR JSON has none (ele-1),
    so deleting an element's last child deletes the element. Whether ``node`` itself is now empty."""
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if _prune(v)]:
            del node[key]
        return not node
    if isinstance(node, list):
        node[:] = [item for item in node if not _prune(item)]
        return not node
    return False


def _remove(target: _Location) -> None:
    del target.parent[target.key]
    if target.owner is not None and target.owner_key is not None and not target.parent:
        del target.owner[target.owner_key]  # FHIR JSON has no empty arrays
