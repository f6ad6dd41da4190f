"""Version preconditions (FHIR R4 http.html#concurrency, #cread): ETags as versions, and whether the copy
a client holds is current. The same for an HTTP header and a Bundle entry's ``ifMatch``/``ifNoneMatch``."""

from __future__ import annotations

from fhir_hub.errors import BadRequest
from fhir_hub.fhir.instant import from_http_date
from fhir_hub.store.records import StoredVersion


def parse_etag(value: str, *, header: str) -> int:
    """``W/"3"`` (or ``"3"``) -> 3; ``header`` names where it came from in the error."""
    text = value.strip()
    if text.startswith(("W/", "w/")):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise BadRequest(f'{header}: {value!r} is not a version tag such as W/"3"', expression=[header])
    return int(text)


def client_copy_is_current(version: StoredVersion, *, if_none_match: str | None,
                           if_modified_since: str | None) -> bool:
    """A conditional read: the client's copy (named by ETags, or by its date) is this version (304)."""
    if if_none_match is not None:
        tags = [t for t in if_none_match.split(",") if t.strip()]
        return any(t.strip() == "*" or parse_etag(t, header="If-None-Match") == version.vid for t in tags)
    if if_modified_since is not None:
        parsed = from_http_date(if_modified_since)
        return parsed is not None and version.ts // 1_000_000 <= parsed // 1_000_000
    return False
