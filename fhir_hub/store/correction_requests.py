"""A resident's correction request: what it must say to be stored, and where the hub routes it.

A resident writes nothing of their record but their consents, and one kind of request: that the facility
which created a record of theirs correct it (the right to rectification, Law 91/2025/QH15). The request is a
FHIR R4 ``Task`` (workflow "Task": a request to act on another resource): ``code`` ``task-code|change``
("change the focal resource"), ``status`` ``requested``, ``intent`` ``proposal`` or ``order``, ``focus`` the
record, ``for`` the resident, and the resident's words in ``description`` or ``input``.

The hub fills in what the resident cannot be trusted to say: ``owner`` (the facility that created the
focus, from its ``meta.source``: the code as a logical reference, and the ``Organization`` carrying that
code when the hub holds one, so the facility finds its worklist with ``Task?owner=Organization/x``),
``requester`` and ``authoredOn``. ``owner`` is also an access fact (``fhir/access_facts.py`` ``addressee``):
the facility reads the request as its own record, and nobody else gains anything.

The focus must be a record the resident may read, as the one access decision says: a record of someone
else, or one that does not exist, is refused with the same words, so a request tells nobody which ids exist.

The facility it is addressed to answers it by updating the Task (PUT or PATCH), although the resident wrote
it: its workflow elements only (``status``, ``statusReason``, ``businessStatus``, ``output``, ``note``,
``lastModified``, ``executionPeriod``), never what was asked, about what or for whom (``answered``). Its
answer is stamped with the facility's ``meta.source``, as any write of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from fhir_hub.auth.caller import Caller
from fhir_hub.errors import Forbidden, UnprocessableResource
from fhir_hub.fhir.access_facts import FACILITY_SYSTEM
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.fhir.instant import to_instant
from fhir_hub.fhir.jsonio import loads
from fhir_hub.search.query import parse_search
from fhir_hub.store.reader import ScopedReader, facility_of
from fhir_hub.store.records import StoredVersion

if TYPE_CHECKING:
    from fhir_hub.store.writer import Existence

TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
CHANGE = "change"  # R4 task-code: "Change the focal resource"
INTENTS = frozenset({"proposal", "order"})
# what the owner of a request may change when answering it (R4 Task's workflow elements); meta is the hub's
ANSWER = frozenset({"status", "statusReason", "businessStatus", "output", "note", "lastModified", "executionPeriod",
                    "meta", "text"})


class Versions(Protocol):
    async def live_versions(self, keys: list[str]) -> list[StoredVersion]: ...


def is_correction_request(resource: dict[str, Any]) -> bool:
    return any(isinstance(c, dict) and c.get("system") == TASK_CODES and c.get("code") == CHANGE
               for c in (resource.get("code") or {}).get("coding") or ())


async def routed_correction(caller: Caller, resource: dict[str, Any], *, reader: Existence, store: Versions,
                            organizations: ScopedReader, now: int) -> dict[str, Any]:
    """The Task to store, routed to the facility that created its focus; raises naming the element when a
    resident may not make this request. ``organizations``: a reader that may search Organizations."""
    _require(is_correction_request(resource), "Task.code",
             f"a resident's Task is a correction request: code {TASK_CODES}|{CHANGE}")
    _require(resource.get("status") == "requested", "Task.status", "a new correction request has status 'requested'")
    _require(resource.get("intent") in INTENTS, "Task.intent", "a correction request's intent is 'proposal' or 'order'")
    _require(bool(str(resource.get("description") or "").strip() or resource.get("input")), "Task.description",
             "say what is wrong and what it should be, in description (or input)")
    subject = _reference(resource.get("for"))
    if subject is None or not subject.startswith("Patient/") or subject.removeprefix("Patient/") not in caller.patients:
        own = " or ".join(f"Patient/{p}" for p in sorted(caller.patients))
        raise Forbidden(f"Task.for: a resident asks for corrections of their own record only ({own})",
                        expression=["Task.for"])
    focus = await _readable_focus(_reference(resource.get("focus")), reader, store)
    facility = facility_of(focus.source)
    _require(facility is not None, "Task.focus",
             f"{focus.key} was not written by a facility; there is no one to route the request to")
    assert facility is not None
    owner: dict[str, Any] = {"identifier": {"system": FACILITY_SYSTEM, "value": facility},
                             **await _organization(organizations, facility)}
    guardian = caller.fhir_user if (caller.fhir_user or "").startswith("RelatedPerson/") else None
    requester = guardian or f"Patient/{caller.patient}"
    return {**resource, "owner": owner, "requester": {"reference": requester}, "authoredOn": to_instant(now)}


def addressed_to(caller: Caller, current: StoredVersion | None) -> bool:
    """Whether ``current`` is a correction request addressed to the caller's facility (its owner may answer it,
    though the resident wrote it: checked before a patch is applied, then ``answered`` checks the answer)."""
    return _request_to(caller, current) is not None


def _request_to(caller: Caller, current: StoredVersion | None) -> dict[str, Any] | None:
    """``current``'s content when it is a correction request addressed to the caller's facility, else None."""
    if current is None or current.rtype != "Task" or current.deleted or caller.facility is None:
        return None
    before: dict[str, Any] = loads(current.json or b"{}")
    owner = (before.get("owner") or {}).get("identifier") or {}
    addressed = is_correction_request(before) and owner.get("system") == FACILITY_SYSTEM \
        and owner.get("value") == caller.facility
    return before if addressed else None


def answered(caller: Caller, current: StoredVersion | None, resource: dict[str, Any]) -> bool:
    """Whether this update is the owner of a correction request answering it (then it may, though another
    wrote the request); raises naming the element when that owner changes more than the answer."""
    before = _request_to(caller, current)
    if before is None:
        return False
    for name in sorted((before.keys() | resource.keys()) - ANSWER - {"id", "resourceType"}):
        if before.get(name) != resource.get(name):
            raise Forbidden(f"Task.{name}: the facility a correction request is addressed to answers it "
                            f"({', '.join(sorted(ANSWER - {'meta', 'text'}))}); what was asked stays as the "
                            "resident wrote it", expression=[f"Task.{name}"])
    return True


async def _readable_focus(reference: str | None, reader: Existence, store: Versions) -> StoredVersion:
    """The focus's current version when the resident may read it; otherwise the same refusal, found or not."""
    rtype, _, rid = (reference or "").partition("/")
    found = await store.live_versions([reference]) if reference and rtype and is_valid_id(rid) else []
    if not found or found[0].deleted or not await reader.permits(found[0], "r"):
        raise UnprocessableResource(f"Task.focus: {reference or 'nothing'} is not a record of yours this hub knows "
                                    "(focus names the record to correct, as Type/id)", expression=["Task.focus"])
    return found[0]


async def _organization(reader: ScopedReader, facility: str) -> dict[str, str]:
    """``reference`` and ``display`` of the Organization carrying this facility code, when the hub holds one
    (the lowest id of several); nothing otherwise."""
    query = parse_search("Organization", [("identifier", f"{FACILITY_SYSTEM}|{facility}"), ("_count", "50")],
                         strict=True)
    found = min((await reader.search(query)).page, key=lambda v: v.key, default=None)
    if found is None:
        return {}
    name = loads(found.json or b"{}").get("name")
    return {"reference": found.key, **({"display": name} if isinstance(name, str) else {})}


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else None


def _require(holds: bool, expression: str, says: str) -> None:
    if not holds:
        raise UnprocessableResource(f"{expression}: {says}", expression=[expression])
