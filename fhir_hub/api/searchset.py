"""Rendering a search page (``services.results.Searched``) as a searchset Bundle: the search route's answer
and a Bundle GET entry's resource. Stored JSON is spliced in without being parsed (``api/bundles.py``)."""

from __future__ import annotations

from urllib.parse import urlencode

from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.responses import outcome_json
from fhir_hub.errors import Issue
from fhir_hub.fhir.subset import subset
from fhir_hub.search.query import SearchQuery
from fhir_hub.services.pages import encode_page
from fhir_hub.services.results import Searched
from fhir_hub.store.records import StoredVersion


def searchset_json(base_url: str, searched: Searched) -> bytes:
    query, outcome = searched.query, searched.outcome
    path = searched.path if searched.path is not None else "" if searched.system else query.rtype
    extra = [("_type", ",".join(searched.types))] if searched.system and searched.types else []
    params = [*extra, *query.link_params()] if searched.link_params is None else list(searched.link_params)
    links = [("self", _link(base_url, path, params, query, None))]
    if outcome.previous is not None:
        links.append(("previous", _link(base_url, path, params, query, encode_page(["before", outcome.previous]))))
    if outcome.next is not None:
        links.append(("next", _link(base_url, path, params, query, encode_page(["after", outcome.next]))))
    entries: list[bytes] = []
    if query.summary != "count":
        entries += [_entry(base_url, query, v, "match") for v in outcome.page]
        entries += [_entry(base_url, query, v, "include") for v in outcome.included]
    if query.ignored:
        entries.append(_ignored_outcome(query))
    total = None if query.total == "none" else outcome.total
    return bundle("searchset", entries=entries, links=links, total=total)


def _link(base_url: str, path: str, kept: list[tuple[str, str]], query: SearchQuery, page: str | None) -> str:
    params = [*kept, ("_count", str(query.count))]
    if page is not None:
        params.append(("_page", page))
    return f"{base_url}/{path}?{urlencode(params)}" if path else f"{base_url}?{urlencode(params)}"


def _entry(base_url: str, query: SearchQuery, v: StoredVersion, mode: str) -> bytes:
    body = subset(v.json, summary=query.summary, elements=query.elements) if v.json else v.json
    return entry(full_url=f"{base_url}/{v.rtype}/{v.rid}", resource=body, search={"mode": mode})


def _ignored_outcome(query: SearchQuery) -> bytes:
    issues = [Issue("not-supported", f"Search parameter {name!r} is not supported for {query.rtype} and was "
                    "ignored", (name,), severity="warning") for name in query.ignored]
    return entry(full_url=None, resource=outcome_json(*issues), search={"mode": "outcome"})
