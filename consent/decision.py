"""The one access decision: made once per request, consulted by the scoped reader and by nothing else.

A decision answers two questions, and they must agree:

- ``narrow(rtype, permission)``: how to narrow a query for one resource type before anything is read, so
  that counts, totals, pages and includes are computed over what the caller may see and never over
  everything (a hidden resource must not be betrayed by ``Bundle.total`` or a page that comes up short);
- ``verdict(facts, permission)``: whether one resource may be handed out, checked again on every resource
  the reader returns (a read by id, a history version, an included resource, a conditional match).

``narrow`` never admits what ``verdict`` denies: the verdict is the narrowing applied to one resource
(property-tested in ``tests/consent``). That is what lets the reader count from a narrowed query without
loading every match.

Today a decision is built from the token's scopes (which types, and whether limited to the resident's
compartment, a *set* of Patient ids because one person may span several source records) and from resources
withheld by key (a Consent's ``provision.data`` denying named resources). The consent issue adds the
resident's consents and the resources' security labels here, and a REDACT verdict next to PERMIT and DENY;
callers of the reader do not change.

Pure: no FastAPI, no pymongo, no hub imports. The reader turns a stored version into ``ResourceFacts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

# SMART permissions the reader asks about: read (r) and search (s). Writes ask with their own permission
# (c, u, d) when they check whether the resource they reach exists for the caller.
Permission = str


class Verdict(Enum):
    PERMIT = "permit"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    """What a decision may look at: never the content, only the facts the store indexes."""

    rtype: str
    rid: str
    patients: frozenset[str]  # the Patient compartments the resource is in
    labels: frozenset[str] = frozenset()  # meta.security as system|code (decided on from the consent issue)

    @property
    def key(self) -> str:
        return f"{self.rtype}/{self.rid}"


@dataclass(frozen=True, slots=True)
class Narrowing:
    """How to narrow a query on one resource type.

    ``patients``: only resources in the compartment of at least one of these patients (None: no such limit;
    an empty set admits nothing). ``withheld``: keys of resources of the type never shown.
    """

    patients: frozenset[str] | None = None
    withheld: frozenset[str] = frozenset()

    @property
    def is_open(self) -> bool:
        """Nothing narrowed: a query may be answered straight from the store (fast listings, plain counts)."""
        return self.patients is None and not self.withheld

    def admits(self, facts: ResourceFacts) -> bool:
        if facts.key in self.withheld:
            return False
        return self.patients is None or not self.patients.isdisjoint(facts.patients)


class Refused:
    """The scopes do not allow the permission on the type (the caller gets 403, which reveals nothing
    about any resource)."""

    __slots__ = ()


REFUSED = Refused()

# The token's answer for one (type, permission): REFUSED, or the patients the access is limited to (None:
# not limited to any compartment).
ScopeAccess = Callable[[str, Permission], frozenset[str] | None | Refused]


@dataclass(frozen=True)
class AccessDecision:
    """One caller's access for one request: scopes first, then what is withheld."""

    scopes: ScopeAccess
    withheld: frozenset[str] = frozenset()
    _by_type: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    # a decision lives for one request, and the reader asks again for every resource it hands out
    _narrowed: dict[tuple[str, Permission], Narrowing | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_type: dict[str, set[str]] = {}
        for key in self.withheld:
            rtype, _, _rid = key.partition("/")
            by_type.setdefault(rtype, set()).add(key)
        object.__setattr__(self, "_by_type", {t: frozenset(keys) for t, keys in by_type.items()})
        object.__setattr__(self, "_narrowed", {})

    def narrow(self, rtype: str, permission: Permission) -> Narrowing | None:
        """None when the caller may not use ``permission`` on ``rtype`` at all."""
        try:
            return self._narrowed[rtype, permission]
        except KeyError:
            pass
        access = self.scopes(rtype, permission)
        found = None if isinstance(access, Refused) else Narrowing(access, self._by_type.get(rtype, frozenset()))
        self._narrowed[rtype, permission] = found
        return found

    def verdict(self, facts: ResourceFacts, permission: Permission) -> Verdict:
        narrowing = self.narrow(facts.rtype, permission)
        return Verdict.PERMIT if narrowing is not None and narrowing.admits(facts) else Verdict.DENY

    def withholds(self, key: str) -> bool:
        """Whether a resource is withheld whoever its patients are: a reference to it inside a resource the
        caller may see (a Provenance's target, an AuditEvent's entity) is left out too."""
        return key in self.withheld

    def withholding(self, keys: Iterable[str]) -> AccessDecision:
        """The same decision with more resources withheld."""
        return AccessDecision(self.scopes, self.withheld | frozenset(keys))
