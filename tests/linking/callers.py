"""Who reads in the linking tests.

A person's records come from several facilities, and under the consent policy (README "Consent: rules that
every read obeys") a facility's token reads only the records its own facility created, never a master. What
linking did is therefore read as the hub's operator (a system token without a facility, policy rule
``record-linkage``), who reads every Patient record, masters included, and no clinical data; the records
are still written by each facility with its own token.
"""

from __future__ import annotations

from fhir_hub.config import Settings
from tests.conftest import as_


def operator(settings: Settings) -> dict[str, str]:
    """The Authorization header of the hub's operator."""
    return as_(settings, facility=None)
