"""Assembling search, history and batch/transaction-response Bundles from stored JSON without parsing it.

Each entry's resource is the stored bytes spliced into the Bundle as they are: a page of 1,000 resources
costs a join, not 1,000 parses and dumps. (Page tokens: ``fhir_hub/services/pages.py``.)
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from fhir_hub.fhir.instant import system_clock, to_instant


def entry(*, full_url: str | None, resource: bytes | None, **fields: Any) -> bytes:
    parts: list[bytes] = []
    if full_url is not None:
        parts.append(b'"fullUrl":' + orjson.dumps(full_url))
    if resource is not None:
        parts.append(b'"resource":' + resource)
    for name, value in fields.items():
        parts.append(orjson.dumps(name) + b":" + orjson.dumps(value))
    return b"{" + b",".join(parts) + b"}"


def bundle(bundle_type: str, *, entries: list[bytes], links: list[tuple[str, str]], total: int | None = None) -> bytes:
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": to_instant(system_clock())},
        "type": bundle_type,
    }
    if total is not None:
        head["total"] = total
    if links:
        head["link"] = [{"relation": rel, "url": url} for rel, url in links]
    body = orjson.dumps(head)
    if not entries:
        return body
    return body[:-1] + b',"entry":[' + b",".join(entries) + b"]}"
