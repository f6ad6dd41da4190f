"""SMART on FHIR scopes (v2 ``.cruds`` and v1 ``.read/.write/.*``) and what they allow.

A scope is ``<context>/<type or *>.<permissions>``: context ``system`` (a hospital system, backend
service), ``user`` (a clinician) or ``patient`` (a resident, limited to their own compartment). v2
permissions are an ordered subset of ``c r u d s``; v1 ``read`` means ``rs``, ``write`` means ``cud`` and
``*`` means all. Anything else (``openid``, ``launch/patient``, a malformed scope, a v2 scope narrowed by
query parameters, which this hub cannot honour yet) grants nothing, so a scope is never read more
generously than it was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache, reduce

CONTEXTS = ("system", "user", "patient")
PERMISSIONS = "cruds"
_SCOPE = re.compile(r"(?P<context>system|user|patient)/(?P<type>\*|[A-Z][A-Za-z]{0,63})\.(?P<perms>[a-z*]+)")
_V1 = {"read": "rs", "write": "cud", "*": PERMISSIONS}


@dataclass(frozen=True, slots=True)
class Scope:
    context: str
    rtype: str  # a resource type, or "*"
    permissions: frozenset[str]

    def covers(self, rtype: str, permission: str) -> bool:
        return (self.rtype == "*" or self.rtype == rtype) and permission in self.permissions


def _permissions(text: str) -> frozenset[str] | None:
    if text in _V1:
        return frozenset(_V1[text])
    position = -1
    for letter in text:  # v2: a non-empty subsequence of "cruds", in that order
        found = PERMISSIONS.find(letter, position + 1)
        if found < 0:
            return None
        position = found
    return frozenset(text) if text else None


def parse_scope(text: str) -> Scope | None:
    match = _SCOPE.fullmatch(text)
    if match is None:
        return None
    permissions = _permissions(match["perms"])
    if permissions is None:
        return None
    return Scope(match["context"], match["type"], permissions)


@dataclass(frozen=True)
class Scopes:
    granted: tuple[Scope, ...]

    @classmethod
    def parse(cls, text: str) -> Scopes:
        parsed = (parse_scope(item) for item in text.split())
        return cls(tuple(s for s in parsed if s is not None))

    def contexts_allowing(self, rtype: str, permission: str) -> frozenset[str]:
        """The contexts (system, user, patient) of the scopes that allow ``permission`` on ``rtype``:
        remembered per token (a token's scopes are asked about on every request it makes)."""
        return _contexts_allowing(self, rtype, permission)

    def any_allowing(self, permission: str) -> bool:
        return any(permission in s.permissions for s in self.granted)

    def within(self, allowed: Scopes) -> Scopes:
        """What of these scopes ``allowed`` also grants, scope by scope: ``system/*.rs`` asked by a client
        allowed ``system/Observation.cruds`` becomes ``system/Observation.rs``; nothing is ever widened."""
        granted: dict[tuple[str, str], set[str]] = {}
        for asked in self.granted:
            for allows in allowed.granted:
                if asked.context != allows.context or "*" not in (asked.rtype, allows.rtype) \
                        and asked.rtype != allows.rtype:
                    continue
                permissions = asked.permissions & allows.permissions
                if permissions:
                    rtype = allows.rtype if asked.rtype == "*" else asked.rtype
                    granted.setdefault((asked.context, rtype), set()).update(permissions)
        return Scopes(tuple(Scope(context, rtype, frozenset(perms)) for (context, rtype), perms in granted.items()))

    @cached_property
    def contexts(self) -> frozenset[str]:
        return reduce(lambda acc, s: acc | {s.context}, self.granted, frozenset())

    def __str__(self) -> str:
        order = {p: i for i, p in enumerate(PERMISSIONS)}
        return " ".join(f"{s.context}/{s.rtype}.{''.join(sorted(s.permissions, key=order.__getitem__))}"
                        for s in self.granted)


@lru_cache(maxsize=16384)
def _contexts_allowing(scopes: Scopes, rtype: str, permission: str) -> frozenset[str]:
    return frozenset(s.context for s in scopes.granted if s.covers(rtype, permission))
