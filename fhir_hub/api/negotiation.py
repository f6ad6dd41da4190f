"""Content negotiation: which JSON media type to answer with, and which request bodies to accept.

The hub speaks FHIR JSON only. A client that can take nothing but XML gets a 406 that says so, and an XML
body gets a 415, rather than a JSON answer it cannot read or a parse error it cannot act on.
"""

from __future__ import annotations

from fhir_hub.errors import NotAcceptable, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
JSON_PATCH = "application/json-patch+json"

_FORMAT_ALIASES = {
    "json": FHIR_JSON,
    FHIR_JSON: FHIR_JSON,
    JSON: JSON,
    "text/json": JSON,
    "application/json+fhir": FHIR_JSON,  # the DSTU2-era name some systems still send
}
_XML = ("xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir", "html", "text/html")


def _media_ranges(header: str) -> list[tuple[str, float]]:
    ranges = []
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        if not parts[0]:
            continue
        q = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((parts[0].lower(), q))
    return ranges


def response_media_type(accept: str | None, format_param: str | None) -> str:
    """The media type to answer with; raises NotAcceptable when the client takes no JSON."""
    if format_param:
        fmt = format_param.strip().lower()
        if fmt in _FORMAT_ALIASES:
            return _FORMAT_ALIASES[fmt]
        if fmt in _XML:
            raise NotAcceptable(f"_format={format_param}: this server answers in FHIR JSON only "
                                "(use _format=json or application/fhir+json)", expression=["_format"])
        raise NotAcceptable(f"_format={format_param}: unknown format; use json", expression=["_format"])
    if not accept:
        return FHIR_JSON
    best, best_q = None, 0.0
    for media, q in _media_ranges(accept):
        if q <= 0:
            continue
        choice = _FORMAT_ALIASES.get(media) or {"*/*": FHIR_JSON, "application/*": FHIR_JSON}.get(media)
        if choice and q > best_q:
            best, best_q = choice, q
    if best is None:
        raise NotAcceptable(f"Accept: {accept[:100]!r} names no media type this server produces; it answers in "
                            f"{FHIR_JSON} or {JSON} only")
    return best


def check_body_media_type(content_type: str | None, *, allowed: tuple[str, ...] = (FHIR_JSON, JSON)) -> str:
    """The body's media type if acceptable. A missing Content-Type is read as FHIR JSON."""
    if not content_type:
        return FHIR_JSON
    media, *params = (p.strip() for p in content_type.split(";"))
    media = media.lower()
    media = _FORMAT_ALIASES.get(media, media)
    if media not in allowed:
        hint = " (XML is not supported)" if "xml" in media else ""
        raise UnsupportedMediaType(f"Content-Type {media!r} is not accepted here{hint}; send "
                                   + " or ".join(allowed))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"Content-Type charset {value.strip()!r} is not accepted; FHIR JSON is UTF-8")
    return media


def preferred_language(accept_language: str | None, supported: tuple[str, ...]) -> str:
    """The language to write narratives in: RFC 9110 ``Accept-Language`` read by RFC 4647 lookup (ranges
    by weight, each cut back a subtag at a time: ``en-GB`` finds ``en``), ``*`` standing for the first of
    ``supported`` (the default). A language given ``q=0`` is refused; when nothing listed is supported, the
    first supported language not refused is used rather than a 406: a summary in the other language is
    more use to a clinician than none."""
    ranges = sorted(_media_ranges(accept_language or ""), key=lambda item: -item[1])  # stable: ties keep order
    refused = {tag for tag, q in ranges if q <= 0}
    for tag, q in ranges:
        if q <= 0:
            continue
        if tag == "*":
            return next((lang for lang in supported if lang not in refused), supported[0])
        subtags = tag.split("-")
        while subtags:
            if (candidate := "-".join(subtags)) in supported and candidate not in refused:
                return candidate
            subtags.pop()
    return next((lang for lang in supported if lang not in refused), supported[0])
