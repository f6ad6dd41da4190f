"""Turning one new version into the ordered steps that store it: the write protocol, in one place.

Three shapes of write, each with a single commit point that a concurrent writer cannot also pass:

- **fresh** (server-assigned id): derived documents (search entries and whatever else the registered
  derivers give, see ``derivers.py``) first, then the insert of the current document. Nothing can race for
  a new id, and a reader never finds the resource before its entries.
- **first version under a client id** (update-as-create): the insert of the current document first,
  ``pending`` until its derived documents are in. A second writer's insert of the same ``_id`` fails.
- **replace** (update, delete, resurrect): the superseded version is copied to history (an idempotent
  upsert, so a retry or a lost race leaves the same copy), then the current document is replaced on the
  condition that it is still the version the writer read. Changes to derived documents, when there are
  any, follow in a second request while the document is marked ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_hub.store.consent_epoch import bump, changes_lookups
from fhir_hub.store.records import VersionChange
from fhir_hub.store.schema import CONSENT_EPOCH, HISTORY, RESOURCES


@dataclass(frozen=True, slots=True)
class Step:
    """insert (one document) | update (one, optionally upserting) | delete (many)."""

    kind: str
    collection: str
    first: dict[str, Any]  # the document to insert, or the filter
    second: dict[str, Any] | None = None  # the update
    upsert: bool = False


# Fields a current document may lack; replacing it must remove those the new version does not have.
OPTIONAL_FIELDS = ("json", "live", "pending", "src", "pc")


def set_document(doc: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An update that turns the matched document into ``doc``.

    ``$set``/``$unset`` rather than a replacement: nx-27017 fails to replace a document holding binary
    data ("Object of type bytes is not JSON serializable") but sets binary fields fine.
    """
    update: dict[str, Any] = {"$set": {k: v for k, v in doc.items() if k != "_id"}}
    absent = [name for name in optional if name not in doc]
    if absent:
        update["$unset"] = dict.fromkeys(absent, "")
    return update


@dataclass(frozen=True, slots=True)
class WritePlan:
    commit: list[Step]  # sent as one ordered request
    derived: list[Step] = field(default_factory=list)  # sent after the commit succeeded
    condition: int | None = None  # index in ``commit`` of the conditional replace that must match
    # the consent epoch's step (``consent_epoch.py``), for a type consent look-ups read: sent after every
    # other step, in the last request (a transaction's group: once it is committed or aborted)
    epoch: Step | None = None

    def requests(self) -> tuple[list[Step], list[Step]]:
        """The two requests a write outside a transaction sends: the commit, then the derived documents
        (empty: none), the epoch's step at the end of the last one."""
        if self.epoch is None:
            return self.commit, self.derived
        if self.derived:
            return self.commit, [*self.derived, self.epoch]
        return [*self.commit, self.epoch], []


def epoch_step(token: str) -> Step:
    query, update = bump(token)
    return Step("update", CONSENT_EPOCH, query, update, upsert=True)


def plan_write(change: VersionChange, token: str) -> WritePlan:
    plan = _plan_write(change, token)
    if changes_lookups(change.version.rtype):
        plan = WritePlan(plan.commit, plan.derived, plan.condition, epoch_step(token))
    return plan


def _plan_write(change: VersionChange, token: str) -> WritePlan:
    v = change.version
    if change.fresh:
        return WritePlan([*_inserted(change), Step("insert", RESOURCES, v.current_doc() | {"w": token})])
    # A first version has no derived documents yet: they are inserted (cheaper than upserts, 2.2 against 3.5
    # ms for 15 on nx-27017); one left by a crash makes the request fail after the commit point, and
    # reconcile repairs.
    derived_steps = _inserted(change) if change.previous is None else _changed(change)
    pending = {"pending": True} if derived_steps else {}
    current = v.current_doc() | pending | {"w": token}
    settle = [Step("update", RESOURCES, {"_id": v.key, "w": token}, {"$unset": {"pending": ""}})] if pending else []
    if change.previous is None:
        return WritePlan([Step("insert", RESOURCES, current), *derived_steps, *settle])
    old = change.previous
    copy = old.history_doc()
    replace = set_document(current, optional=OPTIONAL_FIELDS)
    return WritePlan(
        commit=[Step("update", HISTORY, {"_id": copy["_id"]}, set_document(copy), upsert=True),
                Step("update", RESOURCES, {"_id": v.key, "vid": old.vid}, replace)],
        derived=[*derived_steps, *settle],
        condition=1,
    )


def _inserted(change: VersionChange) -> list[Step]:
    return [Step("insert", d.collection, doc) for d in change.derived for doc in d.new]


def _changed(change: VersionChange) -> list[Step]:
    """The derived documents that differ between the two versions, deriver by deriver."""
    return [step for d in change.derived
            for step in derived_doc_changes(d.collection, {doc["_id"]: doc for doc in d.old}, d.new)]


def derived_doc_changes(collection: str, old: dict[str, dict[str, Any]], new: list[dict[str, Any]]) -> list[Step]:
    """Steps turning the stored documents ``old`` (by ``_id``) of one derived collection into ``new``: those
    gone or changed are deleted, then the changed and new ones inserted (inserts are the cheapest write, and
    a replaced document needs no ``$unset`` of the fields it no longer has)."""
    changed = [doc for doc in new if old.get(doc["_id"]) != doc]
    gone = sorted((old.keys() - {doc["_id"] for doc in new}) | {doc["_id"] for doc in changed if doc["_id"] in old})
    steps = [Step("delete", collection, {"_id": {"$in": gone}})] if gone else []
    return steps + [Step("insert", collection, doc) for doc in changed]
