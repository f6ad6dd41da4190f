"""The golden record: a master Patient's content, computed from its source records alone.

A pure function of the sources (and of the masters merged into it), so that any process may rebuild a
master at any time and get the same content, a rebuild that changes nothing stores nothing (the writer
skips identical content), and undoing a merge needs no saved copy of the master: it is rebuilt.

What "best-known" means, element by element (each chosen element names its source record in a
``golden-record-source`` extension, so a clinician can see where a value came from):

- ``identifier``, ``telecom``: every distinct one of every source (a person's CCCD from one facility and
  their BHYT card from another are both the person's).
- ``name``: the most complete official name: written with its Vietnamese diacritics (an HL7 v2 feed often
  drops them), then with the most name parts, then the newest.
- ``birthDate``: the most precise (a full date beats a year), then the newest.
- ``gender``, ``address``, ``deceased[x]``: the newest record that states them (people move).

Sources are ordered by ``lastUpdated`` then key, so ties always break the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_hub.linking.elements import MASTER_TAG, SOURCE, Decision


@dataclass(frozen=True, slots=True)
class SourceRecord:
    key: str  # "Patient/123"
    resource: dict[str, Any]
    ts: int  # lastUpdated, microseconds


def golden_record(master_id: str, sources: Sequence[SourceRecord], replaces: Sequence[str] = ()) -> dict[str, Any]:
    """The master Patient for ``sources`` (never empty), with a ``replaces`` link to each master merged into it."""
    ordered = sorted(sources, key=lambda s: (s.ts, s.key))
    out: dict[str, Any] = {"resourceType": "Patient", "id": master_id, "meta": {"tag": [MASTER_TAG]}}
    identifiers = _union(ordered, "identifier", lambda i: (i.get("system"), i.get("value")))
    if identifiers:
        out["identifier"] = identifiers
    out["active"] = True
    name = _best(ordered, "name", _name_quality)
    if name is not None:
        out["name"] = [name]
    telecom = _union(ordered, "telecom", lambda t: (t.get("system"), t.get("value")))
    if telecom:
        out["telecom"] = telecom
    for element in ("gender", "birthDate"):
        chosen = _best_primitive(ordered, element, by_precision=element == "birthDate")
        if chosen is not None:
            value, key = chosen
            out[element] = value
            out[f"_{element}"] = {"extension": [_from(key)]}
    for element in ("deceasedBoolean", "deceasedDateTime"):
        chosen = _best_primitive(ordered, element)
        if chosen is not None:
            out[element] = chosen[0]
            break
    address = _newest_list_item(ordered, "address")
    if address is not None:
        out["address"] = [address]
    links = [{"other": {"reference": key}, "type": "replaces"} for key in sorted(replaces)]
    links += [{"other": {"reference": s.key}, "type": "seealso"} for s in sorted(ordered, key=lambda s: s.key)]
    out["link"] = links
    return out


def redirected_master(master_id: str, target: str, decision: Decision | None = None) -> dict[str, Any]:
    """A master merged into ``target``: inactive, pointing forward (FHIR ``replaced-by``), with who merged it
    and why (the merge's audit trail is this version)."""
    link: dict[str, Any] = {"other": {"reference": target}, "type": "replaced-by"}
    if decision is not None:
        link = {"extension": [decision.extension()], **link}
    return {"resourceType": "Patient", "id": master_id, "meta": {"tag": [MASTER_TAG]}, "active": False,
            "link": [link]}


def _from(key: str) -> dict[str, Any]:
    return {"url": SOURCE, "valueReference": {"reference": key}}


def _tagged(item: dict[str, Any], key: str) -> dict[str, Any]:
    others = [e for e in item.get("extension") or [] if not (isinstance(e, dict) and e.get("url") == SOURCE)]
    return {**item, "extension": [*others, _from(key)]}


def _items(resource: dict[str, Any], element: str) -> list[dict[str, Any]]:
    value = resource.get(element)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _union(sources: Sequence[SourceRecord], element: str, identity: Callable[[dict[str, Any]], Any]
           ) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    out = []
    for source in sources:
        for item in _items(source.resource, element):
            ident = identity(item)
            if ident not in seen:
                seen.add(ident)
                out.append(_tagged(item, source.key))
    return out


def _name_quality(name: dict[str, Any]) -> tuple[int, int, int]:
    text = " ".join([str(name.get("family") or ""), *(str(g) for g in name.get("given") or [])])
    accented = any(ord(ch) > 127 for ch in text)
    return (name.get("use") in (None, "official", "usual"), accented, len(text.split()))


def _best(sources: Sequence[SourceRecord], element: str, quality: Callable[[dict[str, Any]], Any]
          ) -> dict[str, Any] | None:
    best: tuple[Any, int, dict[str, Any]] | None = None
    for order, source in enumerate(sources):  # later sources win ties: newer
        for item in _items(source.resource, element):
            candidate = (quality(item), order, _tagged(item, source.key))
            if best is None or candidate[:2] >= best[:2]:
                best = candidate
    return best[2] if best is not None else None


def _best_primitive(sources: Sequence[SourceRecord], element: str, *, by_precision: bool = False
                    ) -> tuple[Any, str] | None:
    best: tuple[int, int, Any, str] | None = None
    for order, source in enumerate(sources):
        value = source.resource.get(element)
        if value is None or value == "unknown":
            continue
        # a date's precision is its length: "1985" < "1985-04" < "1985-04-12"
        precision = len(value) if by_precision and isinstance(value, str) else 0
        if best is None or (precision, order) >= best[:2]:
            best = (precision, order, value, source.key)
    return (best[2], best[3]) if best is not None else None


def _newest_list_item(sources: Sequence[SourceRecord], element: str) -> dict[str, Any] | None:
    for source in reversed(sources):
        items = _items(source.resource, element)
        if items:
            return _tagged(items[0], source.key)
    return None
