"""Consent look-ups kept across requests, for exactly as long as the store's consent epoch stays the same.

A request's consent gate asks for the consents of the people it judges (``consent_subjects.people_consents``:
5 to 7 requests for one resource, ~90 ms for the 1,300 records of one ``Observation?code=`` search). The
answer depends only on documents whose every change also replaces the consent epoch (``consent_epoch.py``),
so a look-up is kept under the epoch read just before it, and served only to look-ups that read that same
epoch: one ``_id`` read instead of the look-up's requests. A look-up that reads a new epoch starts an empty
generation; one still running under the old epoch adds to the old generation, which nobody reads any more.
Every hub process has its own cache and reads the one epoch, so a consent withdrawn through one process
is obeyed by the next request any process serves.

What is kept is the consents themselves, never a verdict: periods, expiry and a child's age are judged at
each request's moment by the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from consent.gate import ConsentLookup, PersonConsents

Fetch = Callable[[frozenset[str]], Awaitable[Mapping[str, PersonConsents]]]
Epoch = Callable[[], Awaitable[str | None]]

# Patients kept per process (a person's consents are a few hundred bytes): beyond, the oldest go first.
MAX_PATIENTS = 200_000


@dataclass(slots=True)
class _Generation:
    epoch: str | None
    people: dict[str, PersonConsents] = field(default_factory=dict)


class ConsentCache:
    def __init__(self, fetch: Fetch, epoch: Epoch, *, max_patients: int = MAX_PATIENTS) -> None:
        self.fetch = fetch
        self.epoch = epoch
        self.max_patients = max_patients
        self._current = _Generation(None)

    def lookup(self) -> ConsentLookup:
        """One request's look-up. Each use reads the epoch first (a request may itself have written in
        between: a Bundle's entries), then answers from the generation of that epoch, fetching and keeping
        what it lacks. The request's gate asks once per batch of resources, never per resource."""

        async def lookup(patients: frozenset[str]) -> Mapping[str, PersonConsents]:
            generation = self._generation(await self.epoch())
            kept = generation.people
            found = {p: kept[p] for p in patients if p in kept}
            missing = patients - found.keys()
            if missing:
                fetched = await self.fetch(frozenset(missing))
                found.update(fetched)
                if generation.epoch is not None:
                    self._keep(generation, fetched)
            return found

        return lookup

    def _generation(self, epoch: str | None) -> _Generation:
        """The generation of ``epoch``: the current one, or a new empty one that replaces it (None: a store
        where nothing was ever written that changes a look-up; nothing is kept then)."""
        if epoch is None:
            return _Generation(None)
        if self._current.epoch != epoch:
            self._current = _Generation(epoch)
        return self._current

    def _keep(self, generation: _Generation, fetched: Mapping[str, PersonConsents]) -> None:
        people = generation.people
        people.update(fetched)
        excess = len(people) - self.max_patients
        if excess > 0:
            for patient in list(people)[:excess]:  # insertion order: the oldest kept first
                del people[patient]
