"""One request's consent gate: the engine, the requester, and the consents of the people it has met so far.

The reader asks the gate to ``prepare`` the people whose resources it is about to judge (one look-up for a
whole page or a whole search's matches), then asks for verdicts, which are plain function calls. The
consents are read per request and kept only for it, so a withdrawn or expired consent stops access on the
very next request: there is no cache to outlive it and no index to rebuild.

Pure: the look-up is handed in (the hub's reads patient links and Consents through it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from consent.engine import (
    Outcome,
    Person,
    Requester,
    Subject,
    beyond_policy,
    breaks_glass,
    by_policy,
    permitted_beyond_policy,
    policy_key,
)
from consent.model import ConsentRecord
from consent.policy import Policy


@dataclass(frozen=True, slots=True)
class PersonConsents:
    """A person's consents, found from any of their records: a consent given on one record of a person
    holds for every record of that person."""

    records: frozenset[str]  # the person's Patient ids
    consents: tuple[ConsentRecord, ...]
    birth_date: str | None = None  # from their records, when they have consents (a child's need guardians)
    person: Person = field(init=False, repr=False, compare=False)  # as the engine takes them, made once

    def __post_init__(self) -> None:
        object.__setattr__(self, "person", Person(self.consents, self.birth_date))


# patient ids -> for each, their person's consents
ConsentLookup = Callable[[frozenset[str]], Awaitable[Mapping[str, PersonConsents]]]


class NotPrepared(RuntimeError):
    """A verdict was asked for a patient whose consents were never looked up: a reader bug, refused loudly
    rather than decided on missing facts."""


class ConsentGate:
    def __init__(self, requester: Requester, policy: Policy, lookup: ConsentLookup) -> None:
        self.requester = requester
        self.policy = policy
        self.lookup = lookup
        self._people: dict[str, PersonConsents] = {}
        self._by_policy: dict[tuple[str, bool, bool], Outcome | None] = {}  # by ``policy_key``
        self._glass = breaks_glass(requester, policy)

    @property
    def needs_consents(self) -> bool:
        """Whether verdicts depend on consents at all (the hub and residents' own reads do not)."""
        return self.requester.kind not in ("hub", "resident")

    async def prepare(self, subjects: Iterable[Subject]) -> None:
        """Look up the consents of the people of those resources the policy alone does not decide."""
        if not self.needs_consents:
            return
        wanted = {p for s in subjects if self._policy(s) is None for p in s.patients}
        missing = frozenset(wanted - self._people.keys())
        if missing:
            found = await self.lookup(missing)
            for patient in missing:
                self._people[patient] = found.get(patient) or PersonConsents(frozenset({patient}), ())

    def outcome(self, subject: Subject) -> Outcome:
        decided = self._policy(subject)  # for the hub and residents, always
        if decided is not None:
            return decided
        return beyond_policy(subject, self.requester, self._persons(subject), self.policy)

    def permits(self, subject: Subject) -> bool:
        """``outcome(subject).permitted``, without the explanation (a search judges thousands)."""
        decided = self._policy(subject)
        if decided is not None:
            return decided.permitted
        return permitted_beyond_policy(subject, self.requester, self._persons(subject), self.policy,
                                       breaking_glass=self._glass)

    def _policy(self, subject: Subject) -> Outcome | None:
        key = policy_key(subject, self.requester)
        try:
            return self._by_policy[key]
        except KeyError:
            found = self._by_policy[key] = by_policy(subject, self.requester, self.policy)
            return found

    def _persons(self, subject: Subject) -> list[Person]:
        """The people whose compartments hold the subject, each once (two records of one person count once)."""
        people: dict[frozenset[str], Person] = {}
        for patient in subject.patients:
            found = self._people.get(patient)
            if found is None:
                raise NotPrepared(f"consents of Patient/{patient} were not looked up")
            people[found.records] = found.person
        return list(people.values())
