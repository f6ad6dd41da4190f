"""Access decisions: pure functions of the caller, the interaction and the resource.

Scopes decide which interactions and resource types a caller may use; a ``patient/`` scope further limits
the caller to the resident's compartment. A caller without the scope gets 403 (nothing about any resource is
revealed by that); a resource outside a resident's compartment is answered exactly like a missing one.

Writes also respect the facility boundary: a record's ``meta.source`` is set by the hub from the token, and
only the source that wrote a record may change or delete it, so a hospital system can never write under
another facility's name. AuditEvent records are written by the hub alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from consent.decision import REFUSED, AccessDecision, Refused
from consent.engine import Requester
from consent.gate import ConsentGate
from consent.policy import default_policy
from fhir_hub.auth.caller import Caller
from fhir_hub.errors import Forbidden, HubError
from fhir_hub.fhir.compartment import compartment_types

# The SMART permission each interaction needs (routes carry the interaction code).
PERMISSION = {
    "read": "r", "vread": "r", "history-instance": "r",
    "search-type": "s", "search-type-post": "s", "search-system": "s", "search-system-post": "s",
    "search-compartment": "s", "search-compartment-post": "s",  # the searched type's permission
    "everything": "s",  # Patient/{id}/$everything: a search of the compartment's types, each under its scope
    "summary": "s",  # Patient/$summary: searches of the person's records by type, each under its scope
    "history-type": "s", "history-system": "s",
    "create": "c", "update": "u", "conditional-update": "u", "delete": "d", "conditional-delete": "d",
    "patch": "u", "conditional-patch": "u",
    "transaction": "",  # a Bundle: each entry is checked as the interaction it carries
    "ingest": "c", "replay": "c",  # a payload's records are transactions: each entry is checked the same way
    # a backfill's progress (its sender only: services check the archive's facility), the queue (the operator)
    "ingest-status": "c", "queue-status": "",
    # patient link operations (services/linking.py checks Patient.u and refuses residents' decisions)
    "merge": "u", "unmerge": "u", "review": "u", "review-list": "s", "links": "r",
    "match": "s",  # Patient/$match: a search by content (services/match.py)
    "risk": "r",  # Patient/{id}/$risk: read through the reader (the Patient, the person's Conditions)
    # cohorts and worklists (services/cohorts.py): searches of Patient, Flag and Encounter through the reader
    "risk-cohort": "s", "priority-worklist": "s",
    "access-check": "r",  # $access-check: the operator asks why a caller may or may not read a resource
    # the audit trail read by who it concerns (services/access_log.py): a resident's access log, a facility's
    # emergency accesses; both are searches of AuditEvent
    "access-log": "s", "emergency-access": "s",
}
HUB_ONLY_TYPES = frozenset({"AuditEvent"})
RESIDENT_WRITES = frozenset({"Consent"})  # give, restrict, withdraw; nothing else of their record
# created, never changed: a correction request to the facility that created a record (store/correction_requests.py)
RESIDENT_REQUESTS = frozenset({"Task"})


@dataclass(frozen=True, slots=True)
class Grant:
    """What the token's scopes allow on one type. Whether a given resource is visible is not decided here
    but by the request's access decision (``consent/decision.py``), which the scoped reader alone consults."""

    rtype: str
    compartment: frozenset[str] | None  # the resident's Patient ids when limited to their compartment

    def may_write(self, patients: frozenset[str]) -> bool:
        """A resident's write must land in their compartment and in nobody else's: an Observation with a
        ``performer`` or a Patient with a ``link`` naming another resident would otherwise appear in that
        person's record, where they can neither remove nor disown it."""
        return self.compartment is None or bool(patients) and patients <= self.compartment


def grant(caller: Caller, rtype: str, permission: str) -> Grant | None:
    if caller.internal:
        return Grant(rtype, None)
    contexts = caller.scopes.contexts_allowing(rtype, permission)
    if rtype in HUB_ONLY_TYPES and not caller.operator:
        # the whole audit trail says who was treated where: its administrator is the hub's operator; a
        # resident reads the entries about them, a facility its emergency accesses ($emergency-access)
        contexts = contexts - {"system", "user"}
    if "system" in contexts or "user" in contexts:
        return Grant(rtype, None)
    if "patient" in contexts and caller.patients and rtype in compartment_types():
        return Grant(rtype, caller.patients)
    return None


def access_decision(caller: Caller, gate: ConsentGate | None = None) -> AccessDecision:
    """The caller's access decision for one request: the token's scopes, then the consent gate on every type
    that holds personal data. Made once per request; the scoped reader is the only code that consults it."""

    def scopes(rtype: str, permission: str) -> frozenset[str] | None | Refused:
        found = grant(caller, rtype, permission)
        return REFUSED if found is None else found.compartment

    return AccessDecision(scopes, gate=gate, personal=consented_types())


@cache
def consented_types() -> frozenset[str]:
    """The types consents decide on: whatever can be in a Patient compartment. AuditEvents are the hub's
    record of access, read through their own narrowing (a resident reads those about them)."""
    return compartment_types() - HUB_ONLY_TYPES


def requester(caller: Caller, now: int) -> Requester:
    """The consent engine's view of the caller (``consent/engine.py``)."""
    kind = "hub" if caller.internal else "resident" if caller.role == "resident" else "facility"
    role = "operator" if caller.operator else caller.role
    return Requester(kind=kind, role=role, facility=caller.facility, user=caller.fhir_user,
                     purpose=caller.purpose, emergency_reason=caller.emergency_reason, now=now)


def refuse_emergency_without_reason(caller: Caller) -> None:
    """Breaking the glass needs a reason, and is for clinicians: refused before anything is read."""
    if not caller.emergency:
        return
    if caller.role not in default_policy().emergency.roles:
        raise Forbidden(f"Emergency access (purpose_of_use {caller.purpose}) is for a clinician's token, not a "
                        f"{caller.role}'s", code="forbidden")
    if caller.emergency_reason is None:
        raise Forbidden(f"Emergency access (purpose_of_use {caller.purpose}) needs the reason in the "
                        "X-Emergency-Reason header; it is audited and shown to the resident", code="forbidden")


def require_operator(caller: Caller, what: str) -> None:
    """The hub's operator (``Caller.operator``) or the hub itself."""
    if not (caller.internal or caller.operator):
        raise Forbidden(f"Only the hub's operator (a system token without a facility) may {what}")


def insufficient_scope(caller: Caller, what: str) -> HubError:
    return Forbidden(f"The token's scopes do not allow {what}", code="forbidden",
                     headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{what}"'})


def require(caller: Caller, rtype: str, permission: str) -> Grant:
    if permission in "cud" and rtype in HUB_ONLY_TYPES and not caller.internal:
        raise Forbidden(f"{rtype} records are written by the hub only")
    found = grant(caller, rtype, permission)
    if found is None:
        raise insufficient_scope(caller, f"{_NAMES[permission]} on {rtype}")
    return found


def require_any(caller: Caller, permission: str) -> None:
    """For system-level interactions: some type must be allowed; results are filtered type by type."""
    if not caller.internal and not caller.scopes.any_allowing(permission):
        raise insufficient_scope(caller, f"{_NAMES[permission]} on any resource type")


def source_uri(caller: Caller, prefix: str) -> str | None:
    """The ``meta.source`` the hub stamps on what this caller writes; None when it may not write at all."""
    if caller.internal:
        return f"{prefix}:hub:{caller.subject.removeprefix('fhir-hub/')}"
    if caller.facility is not None:
        return f"{prefix}:facility:{caller.facility}"
    if caller.patient is not None and caller.role == "resident":
        return f"{prefix}:resident:{caller.patient}"
    return None


def check_write(caller: Caller, grant_: Grant, *, rtype: str, source: str | None, new_patients: frozenset[str] | None,
                existing_source: str | None, exists: bool, answering: bool = False) -> None:
    """Raise unless ``caller`` may write this version. ``new_patients`` is None for a deletion. Whether the
    existing version is visible to the caller at all the writer has asked the reader first. ``answering``:
    the facility a resident's correction request is addressed to answers it (``correction_requests.answered``),
    the one write of another's record the facility boundary lets through."""
    if caller.internal:
        return
    if source is None:
        raise Forbidden("Writes need a facility claim in the token (a hospital system or clinician's MoH "
                        "facility code), or a resident's patient context")
    if caller.role == "resident" and rtype not in RESIDENT_WRITES and not (
            rtype in RESIDENT_REQUESTS and not exists and new_patients is not None):
        raise Forbidden(f"{rtype}: a resident writes only their consents (Consent) and creates correction requests "
                        "(Task); the rest of their record is written by the facilities that treat them")
    if new_patients is not None and not grant_.may_write(new_patients):
        own = " or ".join(f"Patient/{p}" for p in sorted(grant_.compartment or ()))
        raise Forbidden(f"{rtype}: a resident may only write records in their own compartment and nobody "
                        f"else's (every patient reference must be {own})")
    if exists and existing_source != source and not answering:
        owner = "another source" if existing_source is None else existing_source
        raise Forbidden(f"{rtype} belongs to {owner}; only its source may change it (facility boundary)")


_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
