"""The elements the hub owns on Patients: the master tag, the ``refer``/``seealso``/``replaced-by`` links and
the match-decision extension. Pure: read and built here, so every other module agrees on their shape.

Why an extension on the ``refer`` link rather than a separate log: a decision is then stored in the source's
own version, atomically with it, so the record's history is the audit trail of its links (who decided,
which rule, which score) and undoing a decision is storing the previous link again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adapters.normalize import HUB

RECORD_ROLE = f"{HUB}/CodeSystem/record-role"
MASTER_TAG = {"system": RECORD_ROLE, "code": "master", "display": "Master patient record (one per person)"}
DECISION = f"{HUB}/StructureDefinition/match-decision"
SOURCE = f"{HUB}/StructureDefinition/golden-record-source"  # on a master's element: the source it came from
# Masters' ids start with this, and no one else's may: a search can then leave masters out by their key
# alone, without reading them (``masters_hidden``)
MASTER_ID_PREFIX = "master-"


def is_master_key(key: str) -> bool:
    return key.startswith("Patient/" + MASTER_ID_PREFIX)


# Every master's key sorts between these (ids are ASCII letters, digits, '-' and '.', all below 0x7f): a
# listing in key order skips the masters as one range
MASTER_KEYS = ("Patient/" + MASTER_ID_PREFIX, "Patient/" + MASTER_ID_PREFIX + "\x7f")


def masters_hidden(rtype: str, criteria: Iterable[tuple[str, str | None, tuple[str, ...]]]) -> bool:
    """Whether a Patient search leaves the masters out: it does unless it asks for them, by ``_id`` or by
    ``_tag`` on the record role (``_tag=https://fhir.hub.hcmc.vn/CodeSystem/record-role|master``: one entry
    per person). Why not both by default: a master carries every identifier of its sources, so a search by
    identifier would find each person twice, and every conditional create or update by identifier a
    facility sends would then fail with 412 (multiple matches)."""
    if rtype != "Patient":
        return False
    return not any((name == "_id" and modifier is None)
                   or (name == "_tag" and any(RECORD_ROLE in value or "master" in value for value in values))
                   for name, modifier, values in criteria)


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a source record belongs to its master: the rule, the score in bits, the grade, who decided, and
    the record whose comparison decided (None for a record that starts a new person)."""

    rule: str  # "cccd", "bhxh", "ma-bn", "probabilistic", "new-person", "manual"
    score: float | None = None
    grade: str | None = None
    author: str = "fhir-hub/matching"
    matched: str | None = None  # "Patient/123"
    reviews: tuple[str, ...] = ()  # records that may be the same person, for a person to decide (review list)

    def values(self) -> list[tuple[str, dict[str, Any]]]:
        """Each field as (name, FHIR value): the extension's parts, and ``$links``' Parameters parts."""
        found: list[tuple[str, dict[str, Any]]] = [("rule", {"valueCode": self.rule})]
        if self.score is not None:
            found.append(("score", {"valueDecimal": round(self.score, 2)}))
        if self.grade is not None:
            found.append(("grade", {"valueCode": self.grade}))
        found.append(("author", {"valueString": self.author}))
        if self.matched is not None:
            found.append(("matched", {"valueReference": {"reference": self.matched}}))
        found += [("review", {"valueReference": {"reference": key}}) for key in self.reviews]
        return found

    def extension(self) -> dict[str, Any]:
        return {"url": DECISION, "extension": [{"url": name, **value} for name, value in self.values()]}

    @classmethod
    def from_extension(cls, ext: dict[str, Any]) -> Decision:
        items = [p for p in ext.get("extension") or [] if isinstance(p, dict)]
        parts = {p.get("url"): p for p in items}
        score = parts.get("score", {}).get("valueDecimal")
        matched = parts.get("matched", {}).get("valueReference", {}).get("reference")
        reviews = tuple(str(p.get("valueReference", {}).get("reference")) for p in items if p.get("url") == "review")
        return cls(rule=str(parts.get("rule", {}).get("valueCode", "unknown")),
                   score=float(score) if score is not None else None,
                   grade=parts.get("grade", {}).get("valueCode"),
                   author=str(parts.get("author", {}).get("valueString", "unknown")), matched=matched,
                   reviews=reviews)


def is_master(resource: dict[str, Any]) -> bool:
    tags = (resource.get("meta") or {}).get("tag") or []
    return any(isinstance(t, dict) and t.get("system") == RECORD_ROLE and t.get("code") == "master" for t in tags)


def _link_target(link: Any) -> str | None:
    if not isinstance(link, dict):
        return None
    other = link.get("other")
    ref = other.get("reference") if isinstance(other, dict) else None
    return ref if isinstance(ref, str) and ref.startswith("Patient/") else None


def _hub_refer(link: Any) -> bool:
    return (isinstance(link, dict) and link.get("type") == "refer"
            and any(isinstance(e, dict) and e.get("url") == DECISION for e in link.get("extension") or []))


def master_of(resource: dict[str, Any]) -> tuple[str, Decision] | None:
    """The master a source record refers to, and the decision that put it there (None: not linked)."""
    for link in resource.get("link") or []:
        if _hub_refer(link) and (target := _link_target(link)) is not None:
            ext = next(e for e in link["extension"] if isinstance(e, dict) and e.get("url") == DECISION)
            return target, Decision.from_extension(ext)
    return None


def redirect_of(resource: dict[str, Any]) -> str | None:
    """The master a merged-away master now points to (``replaced-by``), if any."""
    if not is_master(resource):
        return None
    for link in resource.get("link") or []:
        if isinstance(link, dict) and link.get("type") == "replaced-by":
            return _link_target(link)
    return None


def redirect_decision(resource: dict[str, Any]) -> Decision | None:
    """Who merged a merged-away master and why (its ``replaced-by`` link's decision), if recorded."""
    for link in resource.get("link") or [] if is_master(resource) else []:
        if isinstance(link, dict) and link.get("type") == "replaced-by":
            for ext in link.get("extension") or []:
                if isinstance(ext, dict) and ext.get("url") == DECISION:
                    return Decision.from_extension(ext)
    return None


def with_master(resource: dict[str, Any], master: str, decision: Decision) -> dict[str, Any]:
    """The source as stored: what the facility sent, with the hub's ``refer`` link (replacing an older one)."""
    kept = [link for link in resource.get("link") or [] if not _hub_refer(link)]
    refer = {"extension": [decision.extension()], "other": {"reference": master}, "type": "refer"}
    return {**resource, "link": [*kept, refer]}


def without_master(resource: dict[str, Any]) -> dict[str, Any]:
    """What the facility sent, without the hub's ``refer`` link: a client that read a record and sends it
    back carries the link it read, and a forged one would join two people's records, so the hub drops it
    like ``meta.versionId`` and decides again."""
    links = resource.get("link")
    if not links:
        return resource
    kept = [link for link in links if not _hub_refer(link)]
    out = {k: v for k, v in resource.items() if k != "link"}
    return {**out, "link": kept} if kept else out

