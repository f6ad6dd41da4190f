"""The commit pipeline: the steps that make every new version, in order, whatever the entry point.

    (match patient: linking/linker.py) ─► validate ─► label sensitivity ─► stamp ─► derive ─► store

``Writer.commit`` decides which write it is, whether the caller may make it and on which current version it
builds; the pipeline makes the version. Its steps come in two kinds because they run at different times:

- **Content steps** (``content_steps``) decide what is stored. Each takes the resource type, the content
  and the transaction the write is part of (None: none), and returns the content to store, or raises a
  ``HubError``. They run once per write, before the version number is known (for a patch, on the patched
  content, each time the patch is applied). Validation is the first; sensitivity labelling
  (``store/labelling.py``) comes after it: after, because it reads valid FHIR; before stamping, because
  what it adds (``meta.security`` labels) is then stored, served and derived from like the rest of the
  content. It reads the labels of the resources a write references, so it needs the transaction: what
  the transaction wrote already counts, and a transaction's labels are planned together (``plan_group``).
  Patient matching runs before the pipeline instead (``linking/linker.py``, from ``Writer.commit``): it
  needs the record's id and claims, and writes other records (masters), so it adds its link to the
  content and hands the write to the pipeline.
- **stamp**, then **derive**, once per attempt at a version number (a writer that loses the race for one
  stamps again): ``stamp`` sets id, version, ``lastUpdated`` and ``meta.source`` and serialises the JSON
  reads will serve; ``derive`` asks every registered deriver (``derivers.DERIVERS``: the search index,
  then whatever the next issues register) for the documents of the new version and of the one it
  supersedes. The store writes those with the version, in the same request or the same transaction, and
  ``MongoStore.reconcile`` recomputes them from the stored JSON after a crash.

Two plain calls rather than a hook framework: a new step is one line in ``content_steps``, a new derived
collection one entry in ``DERIVERS``, and the order is read here, not assembled at run time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fhir_hub.fhir.access_facts import addressee, clinical_time, codes, security_labels
from fhir_hub.fhir.compartment import patient_ids
from fhir_hub.fhir.instant import to_instant
from fhir_hub.fhir.jsonio import dumps, loads
from fhir_hub.fhir.validation_ahead import ValidationAhead
from fhir_hub.store.derivers import Deriver
from fhir_hub.store.labelling import Labelling
from fhir_hub.store.records import Derived, StoredVersion, VersionChange
from fhir_hub.store.transaction import Transaction

ContentStep = Callable[[str, dict[str, Any], Transaction | None], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Stamped:
    """A new version, and its content as stored (parsed once, for the derivers; None for a deletion)."""

    version: StoredVersion
    resource: dict[str, Any] | None


class CommitPipeline:
    def __init__(self, derivers: tuple[Deriver, ...], validation: ValidationAhead, labelling: Labelling) -> None:
        self.derivers = derivers
        self.validation = validation
        self.labelling = labelling
        # The content steps, in order.
        self.content_steps: tuple[ContentStep, ...] = (self.validate, labelling.step)

    async def content(self, rtype: str, resource: dict[str, Any], tx: Transaction | None = None) -> dict[str, Any]:
        """The content to store: ``resource`` once every content step has seen it."""
        for step in self.content_steps:
            resource = await step(rtype, resource, tx)
        return resource

    async def plan_group(self, tx: Transaction, resources: dict[str, dict[str, Any]]) -> None:
        """Before a transaction's first write: what the content steps must know of the whole group (the
        resources it writes, by key), so that each entry is stored as if the others were there already."""
        await self.labelling.plan(tx, resources)

    async def validate(self, rtype: str, resource: dict[str, Any], _tx: Transaction | None = None) -> dict[str, Any]:
        """R4B structure and the hub's stricter JSON checks (a large transaction's in a worker process, see
        ``fhir/validation_ahead.py``: the verdict is still decided here)."""
        await self.validation.check(resource, rtype)
        return resource

    @staticmethod
    def stamp(rtype: str, rid: str, resource: dict[str, Any], *, vid: int, ts: int, method: str,
              source: str | None) -> Stamped:
        stamped = _stamp(resource, rtype=rtype, rid=rid, vid=vid, ts=ts, source=source)
        version = StoredVersion(rtype, rid, vid, ts, method, deleted=False, json=dumps(stamped),
                                source=source, patients=patient_ids(rtype, stamped),
                                labels=security_labels(stamped), codes=codes(stamped),
                                when=clinical_time(stamped), addressee=addressee(rtype, stamped, source))
        return Stamped(version, stamped)

    @staticmethod
    def stamp_deletion(current: StoredVersion, *, ts: int, source: str | None) -> Stamped:
        """A deletion keeps the compartments of the version it deletes (a resident's history still finds it)."""
        version = StoredVersion(current.rtype, current.rid, current.vid + 1, ts, "DELETE", deleted=True, json=None,
                                source=source, patients=current.patients, labels=current.labels)
        return Stamped(version, None)

    def derive(self, new: Stamped, previous: StoredVersion | None, *, fresh: bool = False) -> VersionChange:
        """The change to store: the new version with every deriver's documents, for it and for ``previous``."""
        old = loads(previous.json) if previous is not None and previous.json is not None else None
        derived = tuple(
            Derived(d.collection, d.derive(new.version, new.resource),
                    d.derive(previous, old) if previous is not None else [])
            for d in self.derivers)
        return VersionChange(new.version, previous, derived, fresh=fresh)


def _stamp(resource: dict[str, Any], *, rtype: str, rid: str, vid: int, ts: int, source: str | None
          ) -> dict[str, Any]:
    """The resource as stored and served: server-owned id and meta first, the client's elements after."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k != "source"}
    meta["versionId"] = str(vid)
    meta["lastUpdated"] = to_instant(ts)
    if source is not None:
        meta["source"] = source
    out: dict[str, Any] = {"resourceType": rtype, "id": rid, "meta": meta}
    for name, value in resource.items():
        if name not in out:
            out[name] = value
    return out
