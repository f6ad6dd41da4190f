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

A decision is built from the token's scopes (which types, and whether limited to the resident's
compartment, a *set* of Patient ids because one person may span several source records), from resources
withheld by key, and from the request's consent gate (``gate.py``: the default policy and the consents of
the people whose resources are judged, looked up per request), which decides on every type that can be in
a Patient compartment. Consents need a look-up, so a narrowing is ``prepare``d for the resources it is
about to admit (one look-up for a page or for a search's matches) and then judges each one synchronously.

Pure: no FastAPI, no pymongo, no hub imports. The reader turns a stored version into ``ResourceFacts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from consent.engine import Subject
from consent.gate import ConsentGate

# SMART permissions the reader asks about: read (r) and search (s). Writes ask with their own permission
# (c, u, d) when they check whether the resource they reach exists for the caller.
Permission = str


class Verdict(Enum):
    PERMIT = "permit"
    DENY = "deny"


ResourceFacts = Subject  # what a decision may look at (consent/engine.py)


@dataclass(frozen=True, slots=True)
class Narrowing:
    """How to narrow a query on one resource type.

    ``patients``: only resources in the compartment of at least one of these patients (None: no such limit;
    an empty set admits nothing). ``withheld``: keys of resources of the type never shown. ``exclusive_to``:
    a resident's own records (every Patient id of their person): only resources about none but them.

    Why ``exclusive_to``: a resource can be in several people's compartments (a Group of a household or a
    clinic's cohort, an Observation whose performer is another patient, a Patient whose ``link`` names
    another person's record). Where consents decide, every person's are judged; a resident's token has no
    gate, and being in one of the compartments must not hand them the rest (the other members, the other
    person's record), as ``Grant.may_write`` already refuses them writing such a resource. Their own Patient
    records stay readable whatever their links say.
    """

    patients: frozenset[str] | None = None
    withheld: frozenset[str] = frozenset()
    gate: ConsentGate | None = None  # the consents and policy, when they decide on this type
    exclusive_to: frozenset[str] | None = None

    @property
    def is_open(self) -> bool:
        """Nothing narrowed: a query may be answered straight from the store (fast listings, plain counts)."""
        return self.patients is None and not self.withheld and self.gate is None

    @property
    def judges_each(self) -> bool:
        """Whether a query's matches must each be judged on their facts before counting: the compartment
        entries alone cannot tell a consent's verdict, nor who else a resource is about."""
        return self.gate is not None or self.exclusive_to is not None

    async def prepare(self, facts: Iterable[ResourceFacts]) -> None:
        """Look up the consents ``admits`` will need for these resources (one look-up for all of them)."""
        if self.gate is not None:
            await self.gate.prepare(facts)

    def admits(self, facts: ResourceFacts) -> bool:
        if facts.key in self.withheld:
            return False
        if self.patients is not None and self.patients.isdisjoint(facts.patients):
            return False
        if self.exclusive_to is not None and not (facts.patients <= self.exclusive_to or (
                facts.rtype == "Patient" and facts.rid in self.exclusive_to)):
            return False
        return self.gate is None or self.gate.permits(facts)


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
    gate: ConsentGate | None = None  # consents and policy; they decide on the ``personal`` types only
    personal: frozenset[str] = frozenset()  # types that can be in a Patient compartment
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
        gate = self.gate if self.gate is not None and self.gate.needs_consents and rtype in self.personal else None
        if isinstance(access, Refused):
            found = None
        else:  # a compartment-limited caller nobody's consents judge (a resident) sees what is theirs alone
            exclusive = access if access is not None and gate is None and rtype in self.personal else None
            found = Narrowing(access, self._by_type.get(rtype, frozenset()), gate, exclusive)
        self._narrowed[rtype, permission] = found
        return found

    def verdict(self, facts: ResourceFacts, permission: Permission) -> Verdict:
        """Needs the resource's people prepared first when consents decide (``prepare``)."""
        narrowing = self.narrow(facts.rtype, permission)
        return Verdict.PERMIT if narrowing is not None and narrowing.admits(facts) else Verdict.DENY

    async def prepare(self, facts: list[ResourceFacts], permission: Permission) -> None:
        """Look up what verdicts on these resources will need (their people's consents), all at once."""
        for rtype in {f.rtype for f in facts}:
            narrowing = self.narrow(rtype, permission)
            if narrowing is not None:
                await narrowing.prepare(f for f in facts if f.rtype == rtype)

    def withheld_of(self, rtype: str) -> frozenset[str]:
        """The keys of ``rtype`` withheld, whatever the scopes say of the type."""
        return self._by_type.get(rtype, frozenset())

    def withholds(self, key: str) -> bool:
        """Whether a resource is withheld whoever its patients are: a reference to it inside a resource the
        caller may see (a Provenance's target, an AuditEvent's entity) is left out too."""
        return key in self.withheld

    def withholding(self, keys: Iterable[str]) -> AccessDecision:
        """The same decision with more resources withheld."""
        return AccessDecision(self.scopes, self.withheld | frozenset(keys), self.gate, self.personal)
