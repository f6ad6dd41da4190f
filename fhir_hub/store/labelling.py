"""The commit pipeline's sensitivity step: the labels of ``consent/sensitivity.json`` added on every write.

The rules are pure (``consent/labels.py``); this step finds what they need from the store, the labels of
the resources a write references, and adds what they call for to ``meta.security`` before the version is
stamped, so the labels are stored, served and extracted into ``StoredVersion.labels`` like the rest.

Where the referenced labels come from, first found first:
1. the versions a transaction (or a batch group) has written already, not yet committed;
2. a transaction's plan (``plan``): the labels every resource it writes will carry, worked out together
   before its first write, with those of what it references outside (one store look-up for the whole
   Bundle). An MoH record's Encounter is written before the Conditions its diagnosis names: without the
   plan it would see none of their labels;
3. the store's current versions (``live_facts``: the facts only, never the JSON).

What a write never sees is a later write: when a stored resource gains a label (a Condition corrected to
B20), what references it already keeps its labels until it is written again. Labels go from the referenced
to the referencing resource when the referencing one is written, never back: relabelling what references a
resource would make one write change others. Within a transaction the plan makes the order irrelevant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from consent.labels import Key, Label, Rules, default_rules, group_labels, labelled, read, required
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.transaction import Transaction

_PLAN = "sensitivity-labels"  # the Transaction.notes entry holding a transaction's plan


class LabelFacts(Protocol):
    async def live_facts(self, keys: Iterable[str]) -> list[StoredVersion]: ...


class Labelling:
    def __init__(self, store: LabelFacts, rules: Rules | None = None) -> None:
        self.store = store
        self.rules = rules or default_rules()

    async def step(self, rtype: str, resource: dict[str, Any], tx: Transaction | None) -> dict[str, Any]:
        """The content step: ``resource`` with every label the rules call for."""
        found = read(resource, self.rules)
        known = await self.labels_of(found.references, tx)
        return labelled(resource, required(found, known, self.rules), self.rules)

    async def plan(self, tx: Transaction, resources: Mapping[Key, dict[str, Any]]) -> None:
        """Work out the labels of the resources a transaction writes (by key) before it writes the first."""
        found = {key: read(resource, self.rules) for key, resource in resources.items()}
        wanted = frozenset().union(*(f.references for f in found.values())) - found.keys()
        outside = await self.labels_of(wanted, tx)
        # a transaction shared by several Bundles (bundles/processor.py ``transactions``) plans each in turn:
        # what the earlier ones planned stays known
        tx.notes[_PLAN] = {**tx.notes.get(_PLAN, {}), **outside, **group_labels(found, outside, self.rules)}

    async def labels_of(self, keys: Iterable[Key], tx: Transaction | None) -> dict[Key, frozenset[Label]]:
        """The labels of each of these resources, as this write sees them (see the module's docstring); a
        resource that does not exist has none."""
        planned: dict[Key, frozenset[Label]] = tx.notes.get(_PLAN, {}) if tx is not None else {}
        found: dict[Key, frozenset[Label]] = {}
        rest: list[Key] = []
        for key in keys:
            if tx is not None and key in tx.changes:
                version = tx.changes[key].version
                found[key] = frozenset() if version.deleted else version.labels
            elif key in planned:
                found[key] = planned[key]
            else:
                rest.append(key)
        if rest:
            for version in await self.store.live_facts(rest):
                found[version.key] = version.labels
            if tx is not None and _PLAN in tx.notes:  # a transaction asks about each reference once
                planned.update((key, found.get(key, frozenset())) for key in rest)
        return found
