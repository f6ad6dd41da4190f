"""``Patient/$match`` (FHIR R4 patient-operation-match.html): the persons a Patient's details may be, best first.

The hub's master patient index answers it the way the write path matches (``fhir_hub/linking/linker.py``):
the input is read into match features, filed under its blocking keys, and compared with every source
record under those keys (a handful, never the population) by the writer's own model, so ``$match`` says
what a write of the same Patient would decide. Pairs the engine keeps apart are dropped; links and review
decisions are answered, one entry per **person**: the person's master Patient (the golden record), or the
source itself when it has no master yet, with the best score among that person's sources.

Access: the caller needs search on Patient (403 otherwise), and the scoped reader decides on every record
involved. A source the caller may not see is no evidence (its score would tell what it holds), and a person
whose answered record the caller may not see is left out, so a hidden Patient is neither returned nor
counted: ``total`` and the entries are those of a store without it. The candidates' keys come from the
match blocks and the masters' from the patient links, which hold keys only; every record read for its
content comes through ``reader.store`` and is judged by ``reader.permits``. What is answered is noted in
the request's audit record, as a search notes its page.

**Score** (``search.score``, 0..1): the comparison's bits (``Comparison.score``) through a logistic that
puts the model's lower threshold (review) at 0.5 and its upper threshold (automatic link) at 0.9; with the
default model (12 and 20 bits) the "certain" threshold (30 bits) lands at 0.993. The bits are first held
within the band of the grade the engine gave, so that the score never contradicts the grade: a pair a rule
decided "certain" (same CCCD, BHXH or MA_BN) scores at least as the certain threshold whatever its
demographics, a "probable" one within [upper, certain), a "possible" one (review: the score band, a CCCD
that disagrees with the record, a doubt) within [lower, upper]. Within a band the score rises with the bits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_hub.errors import BadRequest, HubError, Issue
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.linking.elements import is_master_key
from fhir_hub.linking.linker import comparisons
from fhir_hub.matching import Comparison, Model, block_keys, features
from fhir_hub.matching.compare import Grade
from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
_GRADE_RANK = {"certain": 2, "probable": 1, "possible": 0}
_PARAMETERS = ("resource", "onlyCertainMatches", "count")


class MatchIndex(Protocol):
    """The two key look-ups ``$match`` needs beside the reader's store (``MongoStore`` has them): they
    answer keys, never content, and no transaction's own writes are involved (a Bundle entry may not call
    an operation)."""

    async def match_candidates(self, keys: Iterable[str]) -> set[str]: ...

    async def masters_in_use(self, keys: list[str]) -> dict[str, str | None]: ...


@dataclass(frozen=True, slots=True)
class MatchRequest:
    patient: dict[str, Any]
    only_certain: bool = False
    count: int | None = None  # None: the server's default page size


@dataclass(frozen=True, slots=True)
class Match:
    """One person: the record answered, its score (0..1) and grade, and the source whose comparison gave
    them (with that comparison, for the reasons)."""

    version: StoredVersion
    score: float
    grade: Grade
    source: str
    comparison: Comparison


@dataclass(frozen=True, slots=True)
class Matched:
    matches: tuple[Match, ...]  # best first, at most ``count``
    total: int  # every person that matched (with ``onlyCertainMatches``: every certain one)


def match_request(body: dict[str, Any], *, max_count: int) -> MatchRequest:
    """The operation's input: a ``Parameters`` (``resource``, ``onlyCertainMatches``, ``count``), or a bare
    Patient as the spec's own example posts it. Every problem is a 400 naming the parameter."""
    if body.get("resourceType") == "Patient":
        return MatchRequest(_checked_patient(body, "resource"))
    if body.get("resourceType") != "Parameters":
        raise BadRequest("resource: $match takes a Parameters (resource, onlyCertainMatches, count) or a "
                         f"Patient; the body is a {str(body.get('resourceType'))[:40]!r}",
                         expression=["resourceType"])
    given: dict[str, tuple[str, dict[str, Any]]] = {}
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise BadRequest("Parameters.parameter: must be an array", expression=["Parameters.parameter"])
    for index, parameter in enumerate(parameters):
        where = f"Parameters.parameter[{index}]"
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name not in _PARAMETERS:
            raise BadRequest(f"{where}: unknown parameter {str(name)[:40]!r} for $match (it takes "
                             f"{', '.join(_PARAMETERS)})", expression=[where])
        if name in given:
            raise BadRequest(f"{where}: {name} is given twice; it is allowed once", expression=[where])
        given[name] = (where, parameter)
    if "resource" not in given:
        raise BadRequest("resource: missing; $match needs the Patient to match (parameter 'resource')",
                         expression=["Parameters.parameter"])
    where, parameter = given["resource"]
    patient = parameter.get("resource")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        kind = patient.get("resourceType") if isinstance(patient, dict) else None
        raise BadRequest(f"resource: must be a Patient, not {str(kind)[:40]!r}", expression=[f"{where}.resource"])
    only_certain = _value(given, "onlyCertainMatches", "valueBoolean", bool)
    count = _value(given, "count", "valueInteger", int)
    if count is not None and not 1 <= count:
        raise BadRequest(f"count: {count} is not a positive integer", expression=[f"{given['count'][0]}.valueInteger"])
    return MatchRequest(_checked_patient(patient, f"{where}.resource"), bool(only_certain),
                        min(count, max_count) if count is not None else None)


def _value(given: dict[str, tuple[str, dict[str, Any]]], name: str, element: str, kind: type) -> Any:
    if name not in given:
        return None
    where, parameter = given[name]
    value = parameter.get(element)
    # bool is an int in Python: a count of true is not a count
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"{name}: give it as {element}", expression=[f"{where}.{element}"])
    return value


def _checked_patient(patient: dict[str, Any], where: str) -> dict[str, Any]:
    """The spec: the Patient need not be complete, but it must be a valid instance."""
    try:
        validate_resource(patient, expected_type="Patient")
    except HubError as error:
        issues = [Issue("invalid", f"resource: {i.diagnostics}", (where, *i.expression)) for i in error.issues]
        raise BadRequest(issues[0].diagnostics, issues=issues) from None
    return patient


def probability(comparison: Comparison, model: Model) -> float:
    """``search.score`` of a comparison: the logistic of its bits held within its grade's band (module
    docstring). Monotonic in the bits within a grade, and a higher grade never scores lower."""
    bits = comparison.score
    if comparison.grade == "certain":
        bits = max(bits, model.certain)
    elif comparison.grade == "probable":
        bits = min(max(bits, model.upper), model.certain)
    else:
        bits = min(max(bits, model.lower), model.upper)
    slope = math.log(9) / max(model.upper - model.lower, 1.0)  # upper: odds 9 to 1, i.e. 0.9
    return round(1 / (1 + math.exp(-slope * (bits - model.lower))), 4)


async def match(session: Session, request: MatchRequest) -> Matched:
    reader = session.reader
    reader.narrowing("Patient", "s")  # 403 when the scopes do not allow searching Patients at all
    hub = session.hub
    model = hub.writer.linker.model if hub.writer.linker is not None else Model.default()
    index: MatchIndex = hub.store
    record = features(request.patient)
    found = await index.match_candidates(block_keys(record))
    best: dict[str, tuple[tuple[float, int, str], StoredVersion, Comparison]] = {}  # person -> best source
    visible = await reader.permitted(await reader.store.live_versions(k for k in found if not is_master_key(k)),
                                     "s")
    considered = [(v, c) for v, c in comparisons(record, visible, model) if c.grade is not None]
    persons = await index.masters_in_use([v.key for v, _c in considered]) if considered else {}
    for source, comparison in considered:
        assert comparison.grade is not None
        person = persons[source.key] or source.key
        rank = (probability(comparison, model), _GRADE_RANK[comparison.grade], source.key)
        if person not in best or rank[:2] > best[person][0][:2]:
            best[person] = (rank, source, comparison)
    answered = {v.key: v for v in await reader.store.live_versions(best)}
    matches = []
    # the person's master when the caller may see it; else (a master not yet stored, or one the caller's
    # consents do not reach) the best source record the caller sees stands for the person
    visible_keys = {v.key for v in await reader.permitted([*answered.values(), *(s for _r, s, _c in best.values())],
                                                          "s")}
    for person, ((score, _rank, _key), source, comparison) in best.items():
        version = answered[person] if person in answered and person in visible_keys else source
        if version.key in visible_keys and (not request.only_certain or comparison.grade == "certain"):
            assert comparison.grade is not None
            matches.append(Match(version, score, comparison.grade, source.key, comparison))
    matches.sort(key=lambda m: (-m.score, -_GRADE_RANK[m.grade], m.version.key))
    shown = tuple(matches[:request.count or hub.settings.search_limits.default_count])
    if session.audit is not None:
        for item in shown:
            session.audit.touch(item.version)
    return Matched(shown, len(matches))
