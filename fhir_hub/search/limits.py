"""The limits on one search, a plain value shared by the settings and the search parser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchLimits:
    """How much one search may ask for (``FHIR_HUB_DEFAULT_COUNT``, ``_MAX_COUNT``, ``_MAX_SEARCH_PARAMS``,
    ``_MAX_CHAIN_DEPTH``): each chain step and ``_has`` runs a search of its own."""

    default_count: int = 20
    max_count: int = 1000
    max_params: int = 30
    max_chain_depth: int = 4


DEFAULT_LIMITS = SearchLimits()
