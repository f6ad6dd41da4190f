"""The documents the hub keeps in MongoDB, declared once with mongoengine.

Three collections hold all FHIR data:

``resources``: the current version of every resource, ``_id`` = ``Type/id``. A read is one lookup by
primary key, the cheapest query any MongoDB-compatible server answers. ``json`` is the serialised resource
exactly as served: reads return it without parsing. ``live`` (the type name) is present when the current
version is not a deletion; ``pending`` marks a version whose derived documents (search entries, see
``derivers.py``) are still being applied; ``w`` is the token of the write that stored it.

``resource_history``: every superseded version, ``_id`` = ``Type/id/versionId``, written (idempotently)
before the current document is replaced. The replacement is conditional on the version it supersedes, so
two concurrent writers can never both store version *n*, and no version is ever lost.

``search_index``: a resource's search entries, several to a document, each entry a scalar string key in
one of ``SLOTS`` fields ``k0``..``k5`` under a sparse single-field index (layout: ``index_docs.py``): the shape
that is both fast and answered correctly by MongoDB and by nx-27017 (which silently mis-answers queries on
indexed array fields and does not use compound indexes). Entries of a resource in a patient's compartment
also carry ``cj``, the same key behind the patient's id, under its own index: one patient's records are
then a range of ``cj``, however large the whole collection grows.

Hot paths use the collections through pymongo directly (mongoengine is slow there); these classes are the
single statement of field names and indexes, and ``ensure_schema`` creates the indexes at start-up.
"""

from __future__ import annotations

from typing import Any

import mongoengine as me
from pymongo import IndexModel

from fhir_hub.store.index_docs import INDEXED

ALIAS = "fhir_hub"

RESOURCES = "resources"
HISTORY = "resource_history"
SEARCH_INDEX = "search_index"
AUDIT = "audit_events"
META = "hub_meta"  # one small document per fact about the store itself, e.g. the search entries' format
INGEST_ARCHIVE = "ingest_archive"  # every payload POSTed to $ingest, as received, before it is mapped
CLAIMS = "conditional_claims"  # conditional criteria being acted on, one document each (store/claims.py)
MATCH_BLOCKS = "match_blocks"  # each Patient's blocking keys for patient matching (store/match_blocks.py)
PATIENT_LINKS = "patient_links"  # each source Patient's master, each merged master's (store/patient_links.py)
CONSENT_SUBJECTS = "consent_subjects"  # the Patient each Consent is about (store/consent_subjects.py)
# one document: the token of the last write that could change a consent look-up (store/consent_epoch.py)
CONSENT_EPOCH = "consent_epoch"
LINK_DECISIONS = "link_decisions"  # people's decisions about links: distinct pairs, the log (store/link_decisions.py)
QUEUE = "queue_jobs"  # the priority queue's jobs (queue/jobs.py)
USED_ASSERTIONS = "used_client_assertions"  # each backend client's assertion jti, until it expires (used_assertions.py)
BACKEND_CLIENTS = "backend_clients"  # backend clients registered as data (auth/backend.py, store/backend_clients.py)


class _VersionFields(me.Document):
    """What every stored version carries, current or superseded."""

    meta: dict[str, Any] = {"abstract": True, "strict": False}  # subclasses add strings and lists

    key = me.StringField(required=True)  # "Patient/123"
    type = me.StringField(required=True)
    rid = me.StringField(required=True)
    vid = me.IntField(required=True, min_value=1)
    ts = me.LongField(required=True)  # lastUpdated, microseconds since the epoch (UTC)
    method = me.StringField(required=True, choices=("POST", "PUT", "PATCH", "DELETE"))
    deleted = me.BooleanField(default=False)
    json = me.BinaryField()  # absent for a deletion
    src = me.StringField()  # meta.source: who wrote it (a facility, a resident, the hub)
    pc = me.ListField(me.StringField())  # Patient ids whose compartment holds it; stored, never queried
    # access facts (fhir/access_facts.py: labels, codings, clinical time) as one JSON field, always written so
    # every version document has one shape; read with the version by the access decision, never queried
    af = me.BinaryField()


class CurrentResource(_VersionFields):
    meta = {"collection": RESOURCES, "db_alias": ALIAS, "indexes": ["type", "ts", "live", "pending"],
            "auto_create_index": False}

    id = me.StringField(primary_key=True)  # "Patient/123"
    live = me.StringField()
    pending = me.BooleanField()
    w = me.StringField()


class HistoricVersion(_VersionFields):
    meta = {"collection": HISTORY, "db_alias": ALIAS, "indexes": ["key", "type", "ts"],
            "auto_create_index": False}

    id = me.StringField(primary_key=True)  # "Patient/123/4"


class SearchIndexEntry(me.DynamicDocument):
    """Slot fields (``k0``: "Patient|identifier|079190000001", ``c0``: "123|Observation|code|8480-6", ``s0``,
    ``l0``, ``h0``, ``v0``...) are dynamic: their names come from ``index_docs.NAMES``."""

    meta = {"collection": SEARCH_INDEX, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": ["r", *({"fields": [name], "sparse": True} for name in INDEXED)]}

    id = me.StringField(primary_key=True)  # "Patient/123|0": the resource, then the document's number
    r = me.StringField(required=True)  # "Patient/123"


class AuditEntry(me.Document):
    """One audit entry (served as an AuditEvent); see store/audit_log.py for why it is not a stored resource.
    Stored packed (``audit_log.packed``): the fields its queries use are fields, the rest is ``d``."""

    meta = {"collection": AUDIT, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": ["p", "ts", {"fields": ["e"], "sparse": True}, {"fields": ["ef"], "sparse": True}]}

    id = me.StringField(primary_key=True)  # the AuditEvent id
    ts = me.LongField(required=True)  # recorded, microseconds since the epoch
    p = me.StringField()  # the Patient id the event concerns, if any (one entry per patient)
    # emergency access (purpose ETREAT, ``fhir_hub/audit.py``), on every entry of such a request: 1, else absent;
    # rare, so sparse indexes (a resident's emergency entries first, a facility's review of them)
    e = me.IntField()
    ef = me.StringField()  # on the request's entry of an emergency: the facility it is flagged to ("": none)
    # the rest, as JSON: ``i`` the FHIR interaction, ``o`` the HTTP status the client got, ``who`` (subject,
    # role, facility, fhirUser, purpose, emergency reason, address), ``req`` (method, path; query only in the
    # administrator's entry, the one without ``p``), ``r`` the resources handed out or written (first 50),
    # ``more`` how many more were not listed, ``ps`` the administrator's entry's every patient. An entry
    # written before packing has those as fields of their own (read as they are).
    d = me.StringField()


class ArchivedPayload(me.Document):
    """A payload as it arrived at ``$ingest``: kept before mapping so that nothing is lost (tables no adapter
    maps, records rejected) and it can be replayed once a mapping is fixed (``fhir-hub replay``)."""

    meta = {"collection": INGEST_ARCHIVE, "db_alias": ALIAS, "indexes": ["received", "facility", "sha256"],
            "auto_create_index": False, "strict": False}

    id = me.StringField(primary_key=True)
    received = me.LongField(required=True)  # microseconds since the epoch
    payload = me.BinaryField(required=True)
    sha256 = me.StringField(required=True)
    media_type = me.StringField()
    filename = me.StringField()
    format = me.StringField()  # the adapter that read it (absent when none could)
    facility = me.StringField()  # from the caller's token
    caller = me.StringField(required=True)  # the token's subject
    report = me.DictField()  # the last ingest report (counts, rejected records with reasons)


BLOCK_FIELDS = tuple(f"b{n}" for n in range(8))  # match-block slot fields (store/match_blocks.py)


class MatchBlock(me.DynamicDocument):
    """Blocking keys of a Patient (``fhir_hub/matching/blocking.py``): a new record's match candidates are
    the Patients filed under one of its keys. Keys in slot fields (``b0``: "cccd:079085001234", ``b5``:
    "fgy:nguyen|an|1985"...), not a list: nx-27017 finds nothing through an indexed array field."""

    meta = {"collection": MATCH_BLOCKS, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": ["r", *({"fields": [name], "sparse": True} for name in BLOCK_FIELDS)]}

    id = me.StringField(primary_key=True)  # "Patient/123|0": the Patient, then the document's number
    r = me.StringField(required=True)  # "Patient/123"


class PatientLink(me.Document):
    """A source Patient's master (``k`` = "source", with the ``rule`` that decided), or the master a merged
    master now points to (``k`` = "redirect"). ``_id`` is the record: one master per record, by construction."""

    meta = {"collection": PATIENT_LINKS, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": ["r", "m", {"fields": ["review"], "sparse": True}]}

    id = me.StringField(primary_key=True)  # "Patient/123"
    r = me.StringField(required=True)  # the same key: every deriver's documents carry ``r``
    m = me.StringField(required=True)  # "Patient/<master>"
    k = me.StringField(required=True, choices=("source", "redirect"))
    rule = me.StringField()
    review = me.IntField()  # 1 when the record has pairs on the review list


class LinkDecision(me.Document):
    """A "not one person" pair (``k`` = "distinct", ``_id`` = ``distinct|<a>|<b>``) or a log entry of a
    manual merge, unmerge or review (``k`` = "log"): see store/link_decisions.py."""

    meta = {"collection": LINK_DECISIONS, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": ["a", "b"]}

    id = me.StringField(primary_key=True)
    k = me.StringField(required=True, choices=("distinct", "log"))
    a = me.StringField(required=True)  # "Patient/..."
    b = me.StringField()
    by = me.StringField(required=True)  # who decided: the token's subject
    at = me.LongField(required=True)  # microseconds since the epoch


class ConsentSubject(me.Document):
    """The Patient a Consent is about: where a request looks for a person's consents."""

    meta = {"collection": CONSENT_SUBJECTS, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": ["r", "p"]}

    id = me.StringField(primary_key=True)  # "Consent/123"
    r = me.StringField(required=True)  # the same key: every deriver's documents carry ``r``
    p = me.StringField(required=True)  # the Patient id


class QueuedJob(me.DynamicDocument):
    """A job of the priority queue (fields and states: queue/jobs.py). Every index is on a scalar, each
    single-field (nx-27017 uses no compound index): ``rk`` is present only while the job may be claimed, so
    the claim's sort reads the ready jobs alone; ``due`` only while leased or delayed."""

    meta = {"collection": QUEUE, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": [{"fields": ["rk"], "sparse": True}, {"fields": ["due"], "sparse": True},
                        {"fields": ["who"], "sparse": True}, {"fields": ["b"], "sparse": True}, "st",
                        {"fields": ["done"], "sparse": True}, {"fields": ["nc"], "sparse": True}]}

    id = me.StringField(primary_key=True)


class UsedAssertion(me.Document):
    """A client assertion's ``jti`` (``_id`` = ``client|jti``: the unique ``_id`` refuses its second use), kept
    until ``exp``, when the assertion would be refused as expired anyway (``store/used_assertions.py``)."""

    meta = {"collection": USED_ASSERTIONS, "db_alias": ALIAS, "auto_create_index": False, "strict": False,
            "indexes": ["exp"]}

    id = me.StringField(primary_key=True)
    exp = me.FloatField(required=True)  # the assertion's exp, seconds since the epoch


DOCUMENTS: tuple[type[me.Document], ...] = (CurrentResource, HistoricVersion, SearchIndexEntry, AuditEntry,
                                            ArchivedPayload, MatchBlock, PatientLink, LinkDecision, ConsentSubject,
                                            QueuedJob, UsedAssertion)


def ensure_schema(uri: str, db_name: str) -> None:
    """Create every declared index; idempotent, so it runs at each start-up."""
    me.disconnect(ALIAS)
    me.connect(db=db_name, host=uri, alias=ALIAS, uuidRepresentation="standard")
    try:
        for document in DOCUMENTS:
            _create_indexes(document)
        _drop_undeclared_indexes(SearchIndexEntry)
        _drop_undeclared_indexes(MatchBlock)
    finally:
        me.disconnect(ALIAS)


def _create_indexes(document: type[me.Document]) -> None:
    """A collection's declared indexes in one ``createIndexes`` request, as mongoengine's ``ensure_indexes``
    would create them one request each (51 requests at every start, and at every test's, ~50 ms on
    nx-27017; 11 now). The declarations use ``fields`` and ``sparse`` only."""
    models = []
    for spec in document._meta["index_specs"]:
        options = {name: value for name, value in spec.items() if name not in ("fields", "cls")}
        models.append(IndexModel(spec["fields"], **options))
    if models:
        document._get_collection().create_indexes(models)


def _drop_undeclared_indexes(document: type[me.Document]) -> None:
    """Indexes an earlier layout declared (``k``, ``c``) would still be updated on every insert: drop them.
    Compared by their keys, not names: nx-27017 names an index ``idx_<collection>_<field>``."""
    collection = document._get_collection()
    declared = {tuple(spec["fields"]) for spec in document._meta["index_specs"]}
    for name, info in collection.index_information().items():
        if name != "_id_" and tuple((field, int(direction)) for field, direction in info["key"]) not in declared:
            collection.drop_index(name)
