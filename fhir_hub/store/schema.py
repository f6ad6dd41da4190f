"""The documents the hub keeps in MongoDB, declared once with mongoengine.

Two collections hold all FHIR data:

``resource_versions``: one document per version of every resource, never updated except for two derived
flags. ``_id`` is ``Type/id/versionId``, so the unique primary key is what guarantees that two concurrent
writers can never both create version *n* of one resource. ``json`` is the serialised resource exactly as
served: reads return it without parsing. ``live`` (the type name) marks the current, non-deleted version
and ``pending`` marks a version whose derived data (``live`` flags, search entries) is still being applied.

``search_index``: one small document per (resource, search key), a single scalar string ``k`` under a
single-field index: the shape that is both fast and answered correctly by MongoDB and by nx-27017 (which
silently mis-answers queries on indexed array fields and does not use compound indexes).

Hot paths use the collections through pymongo directly (mongoengine is slow there); these classes are the
single statement of field names and indexes, and ``ensure_indexes`` is run from them at start-up.
"""

from __future__ import annotations

import mongoengine as me

ALIAS = "fhir_hub"

VERSIONS = "resource_versions"
SEARCH_INDEX = "search_index"


class ResourceVersion(me.Document):
    meta = {
        "collection": VERSIONS,
        "db_alias": ALIAS,
        "indexes": ["key", "type", "ts", "live", "pending"],
        "auto_create_index": False,
        "strict": False,
    }

    id = me.StringField(primary_key=True)  # "Patient/123/4"
    key = me.StringField(required=True)  # "Patient/123"
    type = me.StringField(required=True)
    rid = me.StringField(required=True)
    vid = me.IntField(required=True, min_value=1)
    ts = me.LongField(required=True)  # lastUpdated, microseconds since the epoch (UTC)
    method = me.StringField(required=True, choices=("POST", "PUT", "PATCH", "DELETE"))
    deleted = me.BooleanField(default=False)
    live = me.StringField()
    pending = me.BooleanField()
    w = me.StringField()  # write token: tells a writer whether an insert that reported an error was its own
    json = me.BinaryField()


class SearchEntry(me.Document):
    meta = {
        "collection": SEARCH_INDEX,
        "db_alias": ALIAS,
        "indexes": ["k", "r"],
        "auto_create_index": False,
        "strict": False,
    }

    id = me.StringField(primary_key=True)  # digest of (r, k): makes re-applying an entry idempotent
    r = me.StringField(required=True)  # "Patient/123"
    k = me.StringField(required=True)  # "Patient|identifier|sv|<system>|<value>"


DOCUMENTS: tuple[type[me.Document], ...] = (ResourceVersion, SearchEntry)


def ensure_schema(uri: str, db_name: str) -> None:
    """Create every declared index; idempotent, so it runs at each start-up."""
    me.disconnect(ALIAS)
    me.connect(db=db_name, host=uri, alias=ALIAS, uuidRepresentation="standard")
    try:
        for document in DOCUMENTS:
            document.ensure_indexes()
    finally:
        me.disconnect(ALIAS)
