"""The audit trail read by those it concerns (issue 17): a resident's access log and a facility's review of
emergency accesses. No HTTP here (``api/access_log.py`` routes them); what anyone sees is decided by the one
reader (``ScopedReader.access_log``, ``ScopedReader.emergency_accesses``).

Who may ask, and why:

- **A resident**, for their own record: every access to any record of their person (``Caller.patients``),
  emergency accesses first. Naming a record (``Patient/{id}/$access-log``) is allowed for one of their
  own; any other answers 404, as a read of it would.
- **The hub's operator** (a system token without a facility), for any record the operator may read: the
  resident's right to know who processed their data (Law 91/2025) is answered by the hub when the resident
  cannot sign in. The log covers the person the record belongs to, as the resident's own view does.
- **Not a facility** (its system or clinicians): who else treated a resident, and when, is itself health
  information about them; a facility reads the emergency accesses its own staff made instead.
- **Emergency accesses**: a facility's system token lists those flagged to its facility code (made with a
  token of that facility); the operator lists every facility's. Clinicians and residents may not.
"""

from __future__ import annotations

from fhir_hub.errors import Forbidden
from fhir_hub.search.execute import Position, SearchOutcome
from fhir_hub.services.session import Session


async def access_log(session: Session, rid: str | None, *, after: Position | None, count: int) -> SearchOutcome:
    """``rid`` None: the calling resident's own record (``Patient/$access-log``)."""
    caller, reader = session.caller, session.reader
    if rid is None:
        if caller.role != "resident" or not caller.patients:
            raise Forbidden("Patient/$access-log lists a resident's own access log and needs a resident's token; "
                            "the hub's operator names the record: Patient/{id}/$access-log")
        keys = {f"Patient/{pid}" for pid in caller.patients}
    else:
        if caller.role != "resident" and not caller.operator:
            raise Forbidden("A record's access log is for the resident and the hub's operator (a system token "
                            "without a facility); a facility lists its own emergency accesses "
                            "(AuditEvent/$emergency-access)")
        await reader.read("Patient", rid)  # a record the caller may not see answers as one that does not exist
        person = await reader.store.person(f"Patient/{rid}")
        keys = set(person.records) if person is not None else {f"Patient/{rid}"}
    # the log of the person's records the caller may see (a resident sees all of their own)
    records = frozenset(v.rid for v in await reader.read_many(keys))
    return await reader.access_log(records, after=after, limit=count)


async def emergency_accesses(session: Session, *, after: Position | None, count: int) -> SearchOutcome:
    caller = session.caller
    if caller.role != "system":
        raise Forbidden("AuditEvent/$emergency-access is for a facility's system token (its own facility's "
                        "emergency accesses) or the hub's operator (every facility's)")
    return await session.reader.emergency_accesses(caller.facility, after=after, limit=count)
