"""Parsing a FHIR search request: criteria (with modifiers, chains and ``_has``) and result parameters.

Values are split on unescaped ``,`` (OR) and tokens on the first unescaped ``|``; ``\\,``, ``\\|``, ``\\$`` and
``\\\\`` stand for the literal characters. Parsed values only ever become string values inside index keys,
never query operators, so a value such as ``{"$gt": ""}`` cannot reach MongoDB as an operator. Parameters
the type does not have are ignored and reported (or refused with ``Prefer: handling=strict``); a known
parameter used wrongly (an unsupported modifier, a chain on a non-reference) is always a 400.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from fhir_hub.errors import BadRequest
from fhir_hub.search.limits import DEFAULT_LIMITS, SearchLimits
from fhir_hub.search.params import params_for

RESULT_PARAMS = frozenset({"_count", "_page", "_format", "_pretty", "_sort", "_total", "_summary", "_elements",
                           "_include", "_revinclude"})
BUILT_IN = frozenset({"_id", "_lastUpdated", "_has"})
MODIFIERS = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"not", "text", "missing", "of-type"}),
    "reference": frozenset({"missing", "mdm"}),  # plus a resource type (":Patient"); mdm: search/persons.py
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "uri": frozenset({"below", "above", "missing"}),
    "composite": frozenset({"missing"}),
}
_BUILT_IN_MODIFIERS = {"_id": frozenset({"not", "missing"}), "_lastUpdated": frozenset({"missing"})}
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SUMMARY = frozenset({"true", "false", "text", "data", "count"})
TOTAL = frozenset({"none", "estimate", "accurate"})

_UNESCAPED_COMMA = re.compile(r"(?<!\\)((?:\\\\)*),")
_UNESCAPE = re.compile(r"\\([\\,|$])")
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class Criterion:
    name: str  # a parameter code of the type, "_id", "_lastUpdated" or "_has"
    any_of: tuple[str, ...]  # the comma-separated alternatives, escapes kept
    modifier: str | None = None
    chain: str | None = None  # what follows the first "." of a chained parameter
    has: tuple[str, str, str] | None = None  # _has:Type:param:rest


@dataclass(frozen=True)
class Include:
    source: str  # the resource type whose reference is followed
    param: str
    target: str | None  # only this target type, or any
    iterate: bool = False


@dataclass(frozen=True)
class SearchQuery:
    rtype: str
    criteria: tuple[Criterion, ...] = ()
    count: int = 20
    page: str | None = None
    ignored: tuple[str, ...] = field(default=())
    sort: tuple[tuple[str, bool], ...] = ()  # (parameter, descending)
    total: str | None = None
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()

    def link_params(self) -> list[tuple[str, str]]:
        """The parameters actually used, for ``self`` and ``next`` links (ignored ones are left out)."""
        params = [(_criterion_key(c), ",".join(c.any_of)) for c in self.criteria]
        if self.sort:
            params.append(("_sort", ",".join(("-" if desc else "") + name for name, desc in self.sort)))
        for name, value in (("_total", self.total), ("_summary", self.summary)):
            if value is not None:
                params.append((name, value))
        if self.elements is not None:
            params.append(("_elements", ",".join(self.elements)))
        for name, includes in (("_include", self.includes), ("_revinclude", self.revincludes)):
            for inc in includes:
                params.append((name + (":iterate" if inc.iterate else ""),
                               ":".join(p for p in (inc.source, inc.param, inc.target) if p)))
        return params


def _criterion_key(c: Criterion) -> str:
    if c.has is not None:
        return f"_has:{c.has[0]}:{c.has[1]}:{c.has[2]}"
    key = c.name + (f":{c.modifier}" if c.modifier else "")
    return key + (f".{c.chain}" if c.chain else "")


def split_or(value: str) -> list[str]:
    """``a,b\\,c`` -> ``["a", "b\\,c"]`` (escapes kept, so ``|`` can still be found)."""
    parts, start = [], 0
    for m in _UNESCAPED_COMMA.finditer(value):
        parts.append(value[start : m.end() - 1])
        start = m.end()
    parts.append(value[start:])
    return parts


def unescape(value: str) -> str:
    return _UNESCAPE.sub(r"\1", value)


def split_pipes(value: str, most: int = -1) -> list[str]:
    """``a|b\\|c|d`` -> ``["a", "b|c", "d"]``: split on unescaped ``|`` (at most ``most`` times), unescaped."""
    parts, start, i = [], 0, 0
    while i < len(value) and most != 0:
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "|":
            parts.append(value[start:i])
            start = i + 1
            most -= 1
        i += 1
    parts.append(value[start:])
    return [unescape(part) for part in parts]


def split_token(value: str) -> tuple[str | None, str]:
    """``system|code`` -> (system, code); no unescaped ``|`` -> (None, code)."""
    parts = split_pipes(value, 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def split_prefix(value: str) -> tuple[str, str]:
    """``ge2024-01`` -> ("ge", "2024-01"); no prefix means ``eq``."""
    if len(value) > 2 and value[:2] in DATE_PREFIXES and not value[2].isalpha():
        return value[:2], value[2:]
    return "eq", value


def parse_count(raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        count = int(raw)
    except ValueError:
        raise BadRequest(f"_count: {raw!r} is not a whole number", expression=["_count"]) from None
    if count < 0:
        raise BadRequest("_count: must not be negative", expression=["_count"])
    if count > maximum:
        raise BadRequest(f"_count: {count} is above this server's maximum of {maximum}", expression=["_count"])
    return count


def known_params(rtype: str) -> frozenset[str]:
    return frozenset(params_for(rtype)) | BUILT_IN


def param_type(rtype: str, name: str) -> str:
    if name == "_id":
        return "token"
    if name == "_lastUpdated":
        return "date"
    return params_for(rtype)[name].type


def parse_criterion(rtype: str, key: str, value: str) -> Criterion | None:
    """One criterion, or None when ``key`` is not a parameter of ``rtype``."""
    if key.startswith("_has:"):
        parts = key.split(":", 3)
        if len(parts) != 4 or not all(parts[1:]):
            raise BadRequest(f"{key}: _has needs the form _has:Type:parameter:criterion", expression=[key])
        return Criterion("_has", tuple(split_or(value)), has=(parts[1], parts[2], parts[3]))
    head, _, chain = key.partition(".")
    name, _, modifier = head.partition(":")
    if name not in known_params(rtype) or name == "_has":
        return None
    kind = param_type(rtype, name)
    allowed = _BUILT_IN_MODIFIERS.get(name, MODIFIERS.get(kind, frozenset()))
    if chain and kind != "reference":
        raise BadRequest(f"{key}: only reference parameters can be chained", expression=[key])
    if modifier and modifier not in allowed and not (kind == "reference" and modifier[:1].isupper()):
        raise BadRequest(f"{key}: the modifier :{modifier} is not supported for a {kind} parameter",
                         expression=[key], code="not-supported")
    if modifier == "missing" and value not in ("true", "false"):
        raise BadRequest(f"{key}: :missing takes true or false", expression=[key])
    return Criterion(name, tuple(split_or(value)), modifier or None, chain or None)


def parse_search(
    rtype: str,
    params: Sequence[tuple[str, str]],
    *,
    strict: bool,
    limits: SearchLimits = DEFAULT_LIMITS,
) -> SearchQuery:
    """Criteria, result parameters and the names of parameters that were ignored (or refused, strict)."""
    if len(params) > limits.max_params:
        raise BadRequest(f"The request has {len(params)} search parameters; this server accepts at most "
                         f"{limits.max_params} (FHIR_HUB_MAX_SEARCH_PARAMS)", code="too-costly")
    criteria: list[Criterion] = []
    ignored: list[str] = []
    result: dict[str, str] = {}
    includes: list[Include] = []
    revincludes: list[Include] = []
    for key, value in params:
        base = key.partition(":")[0]
        if base in ("_include", "_revinclude"):
            target = includes if base == "_include" else revincludes
            target.append(_parse_include(key, value))
        elif base in RESULT_PARAMS:
            result[base] = value
        else:
            _check_depth(key, limits.max_chain_depth)
            criterion = parse_criterion(rtype, key, value)
            if criterion is not None:
                criteria.append(criterion)
            elif strict:
                raise BadRequest(f"Search parameter {key.split(':')[0].split('.')[0]!r} is not supported for "
                                 f"{rtype}", expression=[key], code="not-supported")
            else:
                ignored.append(key)
    return SearchQuery(
        rtype=rtype,
        criteria=tuple(criteria),
        count=parse_count(result.get("_count"), default=limits.default_count, maximum=limits.max_count),
        page=result.get("_page"),
        ignored=tuple(ignored),
        sort=_parse_sort(rtype, result.get("_sort")),
        total=_one_of("_total", result.get("_total"), TOTAL),
        summary=_one_of("_summary", result.get("_summary"), SUMMARY),
        elements=_parse_elements(result.get("_elements")),
        includes=tuple(includes),
        revincludes=tuple(revincludes),
    )


def parse_system_search(
    types: Sequence[str],
    params: Sequence[tuple[str, str]],
    *,
    strict: bool,
    limits: SearchLimits = DEFAULT_LIMITS,
) -> list[SearchQuery]:
    """A system-level search as one query per type, all with the same criteria and result parameters.

    A parameter counts as known only if every searched type has it (R4 search.html#all: with ``_type``
    the other parameters "SHALL be common to all provided types"); otherwise it is ignored for all of
    them, or refused with ``Prefer: handling=strict``.
    """
    def parse(rtype: str, kept: Sequence[tuple[str, str]], refuse: bool) -> SearchQuery:
        return parse_search(rtype, kept, strict=refuse, limits=limits)

    unknown: list[str] = []
    for rtype in types:
        ignored = parse(rtype, params, False).ignored
        if ignored and strict:
            parse(rtype, params, True)  # raises, naming the parameter
        unknown += [key for key in ignored if key not in unknown]
    kept = [(key, value) for key, value in params if key not in unknown]
    return [replace(parse(rtype, kept, strict), ignored=tuple(unknown)) for rtype in types]


def _check_depth(key: str, most: int) -> None:
    """Chains (``a.b.c``) and nested ``_has`` each add a search; refused past the configured depth."""
    depth = key.count(".") + key.count("_has:")
    if depth > most:
        raise BadRequest(f"{key[:200]}: {depth} chained searches; this server follows at most {most} "
                         "(FHIR_HUB_MAX_CHAIN_DEPTH)", expression=[key[:200]], code="too-costly")


def _one_of(name: str, value: str | None, allowed: frozenset[str]) -> str | None:
    if value is not None and value not in allowed:
        raise BadRequest(f"{name}: {value!r} is not one of {', '.join(sorted(allowed))}", expression=[name])
    return value


def _parse_sort(rtype: str, value: str | None) -> tuple[tuple[str, bool], ...]:
    if not value:
        return ()
    keys = []
    for item in value.split(","):
        descending = item.startswith("-")
        name = item.lstrip("-")
        if name not in known_params(rtype) or name == "_has":
            raise BadRequest(f"_sort: {name!r} is not a search parameter of {rtype}", expression=["_sort"])
        keys.append((name, descending))
    return tuple(keys)


def _parse_elements(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    for name in names:
        if not _ELEMENT.fullmatch(name):
            raise BadRequest(f"_elements: {name!r} is not an element name", expression=["_elements"])
    return names


def _parse_include(key: str, value: str) -> Include:
    modifier = key.partition(":")[2]
    if modifier not in ("", "iterate", "recurse"):
        raise BadRequest(f"{key}: only the :iterate modifier is supported", expression=[key])
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadRequest(f"{key}: {value!r} is not Type:parameter[:targetType]", expression=[key])
    source, param = parts[0], parts[1]
    if param not in params_for(source) or params_for(source)[param].type != "reference":
        raise BadRequest(f"{key}: {source}:{param} is not a reference parameter", expression=[key])
    return Include(source, param, parts[2] if len(parts) == 3 else None, iterate=bool(modifier))
