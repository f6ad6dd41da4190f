"""Parsing search parameters into criteria, following the escaping rules of FHIR search.

Values are split on unescaped ``,`` (OR) and tokens on the first unescaped ``|``; ``\\,``, ``\\|``,
``\\$`` and ``\\\\`` stand for the literal characters. Parsed values only ever become string values inside
index keys, never query operators, so a value such as ``{"$gt": ""}`` or ``$where`` cannot reach MongoDB as
an operator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_hub.errors import BadRequest

# Criteria understood by this foundation (the search issue extends the set to every R4 parameter).
CRITERIA = ("_id", "identifier")
TYPE_CRITERIA = {"AuditEvent": ("_id", "patient")}  # the audit log answers "who accessed this patient"


def criteria_for(rtype: str) -> tuple[str, ...]:
    return TYPE_CRITERIA.get(rtype, CRITERIA)
# Parameters that shape the answer rather than select resources.
RESULT_PARAMS = frozenset({"_count", "_page", "_format", "_pretty"})

_UNESCAPED_COMMA = re.compile(r"(?<!\\)((?:\\\\)*),")
_UNESCAPE = re.compile(r"\\([\\,|$])")


@dataclass(frozen=True)
class Criterion:
    name: str
    any_of: tuple[str, ...]  # the comma-separated alternatives, unescaped later by the consumer


@dataclass(frozen=True)
class SearchQuery:
    rtype: str
    criteria: tuple[Criterion, ...] = ()
    count: int = 20
    page: str | None = None
    ignored: tuple[str, ...] = field(default=())

    def criteria_params(self) -> list[tuple[str, str]]:
        """The criteria as query parameters, for ``self`` and ``next`` links."""
        return [(c.name, ",".join(c.any_of)) for c in self.criteria]


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


def split_token(value: str) -> tuple[str | None, str]:
    """``system|code`` -> (system, code); no unescaped ``|`` -> (None, code)."""
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "|":
            return unescape(value[:i]), unescape(value[i + 1 :])
        i += 1
    return None, unescape(value)


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


def parse_search(
    rtype: str,
    params: Sequence[tuple[str, str]],
    *,
    default_count: int,
    max_count: int,
    strict: bool,
    max_params: int = 30,
) -> SearchQuery:
    """Criteria, paging and the names of parameters that were ignored (lenient) or refused (strict)."""
    if len(params) > max_params:
        raise BadRequest(f"The request has {len(params)} search parameters; this server accepts at most "
                         f"{max_params} (FHIR_HUB_MAX_SEARCH_PARAMS)", code="too-costly")
    criteria: list[Criterion] = []
    ignored: list[str] = []
    count_raw: str | None = None
    page: str | None = None
    for name, value in params:
        if name == "_count":
            count_raw = value
        elif name == "_page":
            page = value
        elif name in RESULT_PARAMS:
            continue
        elif name in criteria_for(rtype):
            criteria.append(Criterion(name, tuple(split_or(value))))
        elif strict:
            raise BadRequest(
                f"Search parameter {name!r} is not supported for {rtype} (supported: "
                f"{', '.join(criteria_for(rtype))})",
                expression=[name],
                code="not-supported",
            )
        else:
            ignored.append(name)
    return SearchQuery(
        rtype=rtype,
        criteria=tuple(criteria),
        count=parse_count(count_raw, default=default_count, maximum=max_count),
        page=page,
        ignored=tuple(ignored),
    )
