"""Turning criteria into the set of matching resources, with the search index doing the heavy lifting.

Each criterion becomes a plan: the index matches that find its candidate entries, an exact test on each
entry (a date's range, a quantity's unit), and whether the criterion is a complement (``:not``,
``:missing=true``, ``ne``). Plans are probed with a small limit first: the ones that turn out small give
exact key sets whose intersection becomes the candidates, and the large ones are then evaluated only over
those candidates (``r in [...]``), so a selective criterion (a patient, an identifier) never drags a large
one (a common code) through memory. Chains and ``_has`` run an inner search first, under the same access
narrowing of the caller's access decision, and match its results by reference. Every result set is
narrowed here, before anything is counted or paged (``matching``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from consent.decision import Narrowing
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.compartment import covers_compartment, scoping_params
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.search import keys
from fhir_hub.search.normalize import date_range, decimal_of_range, decimal_range, normalize_text, sortable_time
from fhir_hub.search.params import params_for
from fhir_hub.search.query import (
    Criterion,
    param_type,
    parse_criterion,
    split_pipes,
    split_prefix,
    split_token,
    unescape,
)
from fhir_hub.store.index_docs import FACTS, entry_key
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.records import EntryMatch, resource_key

PROBE = 1000  # entries fetched to learn whether a criterion is selective
_DAY = 86_400_000_000
EntryTest = Callable[[dict[str, Any]], bool]
NarrowingFor = Callable[[str], Narrowing]  # a type's narrowing for a search (403 when not allowed)
# keys a gated narrowing admits among some resources of a type (None: all of them), given the access facts
# of those already met in index entries (by key)
Admitted = Callable[[str, set[str] | None, Narrowing, Mapping[str, bytes]], Awaitable[set[str]]]


@dataclass(frozen=True)
class Plan:
    matches: tuple[EntryMatch, ...] = ()
    test: EntryTest | None = None  # exact condition on an entry (beyond what the index selected)
    complement: bool = False  # the criterion matches resources WITHOUT such entries
    keys: frozenset[str] | None = None  # already known: exactly these resources (chains, _has, _lastUpdated)


class Evaluator:
    def __init__(self, store: ReadStore, *, base_url: str | None, narrowing_for: NarrowingFor,
                 live_keys: Callable[[str], Awaitable[set[str]]], admitted: Admitted) -> None:
        self.store = store
        self.base_url = base_url
        self.narrowing_for = narrowing_for
        self.live_keys = live_keys
        self.admitted = admitted
        # the access facts of the resources whose index entries this request has read (``index_docs.FACTS``):
        # a consent gate judges matches by them instead of reading every match's version document again
        self.facts: dict[str, bytes] = {}

    def scope(self, rtype: str, criteria: tuple[Criterion, ...], narrowing: Narrowing) -> str | None:
        """The patient whose compartment holds every result, when the narrowing or a criterion says so."""
        return self._scope(rtype, criteria, narrowing)[0]

    def _scope(self, rtype: str, criteria: tuple[Criterion, ...], narrowing: Narrowing
               ) -> tuple[str | None, Criterion | None]:
        """(patient, the criterion that names it): a narrowing to one patient, or a criterion ``param=Patient/X``
        (one value, no chain) on a parameter whose paths all lie in the compartment definition. Every
        other criterion can then be answered from X's compartment entries alone: the same results from
        far fewer reads."""
        if narrowing.patients is not None and len(narrowing.patients) == 1:
            return next(iter(narrowing.patients)), None
        scoping = scoping_params(rtype)
        for criterion in criteria:
            if (criterion.name in scoping and criterion.chain is None and len(criterion.any_of) == 1
                    and criterion.modifier in (None, "Patient")):
                target_type, target = self.reference_target(rtype, criterion.name, criterion.modifier,
                                                            criterion.any_of[0])
                if target_type == "Patient" and is_valid_id(target):
                    return target, criterion
        return None, None

    async def matching(self, rtype: str, criteria: tuple[Criterion, ...], narrowing: Narrowing) -> set[str] | None:
        """Keys of resources meeting every criterion and the narrowing (not yet filtered to live ones);
        None means every resource of the type (no criteria and an open narrowing).

        With a patient scope, the criterion naming the patient goes last, within what the others found
        (they are bounded by that patient's entries, it by nothing smaller); it is left out altogether
        when its parameter is the whole compartment definition (``Encounter?patient=``) and another
        criterion already kept only that patient's resources.
        """
        found = await self._narrowed(rtype, criteria, narrowing)
        withheld = narrowing.withheld
        if found is not None and withheld:
            found = found - withheld
        if narrowing.judges_each:  # consents, or who else it is about: from each match's facts, before counting
            return await self.admitted(rtype, found, narrowing, self.facts)
        return found

    async def _narrowed(self, rtype: str, criteria: tuple[Criterion, ...], narrowing: Narrowing) -> set[str] | None:
        found: set[str] | None = None
        if narrowing.patients is not None:
            found = await self._keys([keys.compartment_match(rtype, p) for p in sorted(narrowing.patients)], None)
            if not found:
                return set()
        elif narrowing.withheld and not criteria:
            return await self.live_keys(rtype)
        scope, pinned_by = self._scope(rtype, criteria, narrowing)
        ordered = _by_cost(criteria)
        if pinned_by is not None:
            ordered = [c for c in ordered if c is not pinned_by] + [pinned_by]
        large: list[Plan] = []
        unverified = False  # keys named by the client (_id) or by references (_has) may not exist
        in_compartment = False  # found holds only resources of the scope's compartment
        for criterion in ordered:
            if criterion.name in ("_id", "_lastUpdated") and criterion.modifier == "missing":
                if criterion.any_of == ("true",):  # every stored resource has both
                    return set()
                continue
            if criterion is pinned_by and in_compartment and covers_compartment(rtype, criterion.name):
                continue
            plan = _scoped(await self._plan(rtype, criterion), scope)
            unverified = unverified or criterion.name in ("_id", "_has")
            if plan.keys is not None and not plan.complement:
                found = set(plan.keys) if found is None else found & plan.keys
                if not found:
                    return set()
                continue
            if plan.complement:
                large.append(plan)
                continue
            probe = await self._probe(plan, found)
            if probe is None:
                large.append(plan)
            else:
                found = probe if found is None else found & probe
                in_compartment = in_compartment or scope is not None
            if found is not None and not found:
                return set()
        for plan in large:
            if found is None:
                found = await self.live_keys(rtype) if plan.complement else await self._run(plan, None)
                if plan.complement:
                    found -= await self._hits(plan, found)
                continue
            hits = await self._hits(plan, found)
            found = found - hits if plan.complement else found & hits
            if not found:
                return set()
        if unverified and found:
            found = await self.store.live_among(found)
        return found

    async def _hits(self, plan: Plan, within: set[str]) -> set[str]:
        return within & plan.keys if plan.keys is not None else await self._run(plan, within)

    async def _probe(self, plan: Plan, within: set[str] | None) -> set[str] | None:
        """The plan's keys if it is small (or ``within`` is), else None (to be run later, restricted)."""
        if within is not None:
            return await self._run(plan, within)
        hits: set[str] = set()
        for match in plan.matches:
            entries = await self.store.entries(match, limit=PROBE + 1)
            if len(entries) > PROBE:
                return None
            hits |= self._hits_of(entries, plan.test)
        return hits

    async def _run(self, plan: Plan, within: set[str] | None) -> set[str]:
        hits: set[str] = set()
        for match in plan.matches:
            if within is not None:
                match = _within(match, within)
            hits |= self._hits_of(await self.store.entries(match), plan.test)
        return hits

    def _hits_of(self, entries: Iterable[dict[str, Any]], test: EntryTest | None) -> set[str]:
        """The resources of the entries that pass ``test``, their access facts noted on the way."""
        hits: set[str] = set()
        facts = self.facts
        for entry in entries:
            if test is None or test(entry):
                key = entry["r"]
                hits.add(key)
                if FACTS in entry:
                    facts[key] = entry[FACTS]
        return hits

    async def _keys(self, matches: list[EntryMatch], within: set[str] | None) -> set[str]:
        return await self._run(Plan(tuple(matches)), within)

    # ------------------------------------------------------------------------------------ planning
    async def _plan(self, rtype: str, criterion: Criterion) -> Plan:
        if criterion.has is not None:
            return await self._has(rtype, criterion)
        name, modifier = criterion.name, criterion.modifier
        if name == "_id":  # the resources' own keys, no index entries
            ids = frozenset(resource_key(rtype, unescape(v)) for v in criterion.any_of if is_valid_id(unescape(v)))
            return Plan(keys=ids, complement=modifier == "not")
        kind = param_type(rtype, name)
        if modifier == "missing":
            present = Plan((EntryMatch(keys.param_prefix(rtype, name), prefix=True),))
            return Plan(present.matches, complement=criterion.any_of == ("true",))
        if name == "_lastUpdated":
            return Plan(keys=frozenset(await self._last_updated(rtype, criterion)))
        if criterion.chain is not None:
            return await self._chain(rtype, criterion)
        builder = _BUILDERS[kind]
        plans = [builder(self, rtype, name, modifier, value) for value in criterion.any_of if value != ""]
        if not plans:
            raise BadRequest(f"{name}: a value is needed", expression=[name])
        matches = tuple(m for p in plans for m in p.matches)
        tests = [p.test for p in plans]
        test = None if all(t is None for t in tests) else _any_test(plans)
        complement = modifier == "not" or all(p.complement for p in plans)
        return Plan(matches, test, complement)

    async def _chain(self, rtype: str, criterion: Criterion) -> Plan:
        param = params_for(rtype)[criterion.name]
        targets = [criterion.modifier] if criterion.modifier else list(param.targets)
        inner_key, _, _ = criterion.chain.partition(".") if criterion.chain else ("", "", "")
        ids: dict[str, set[str]] = {}
        for target in targets:
            inner = parse_criterion(target, criterion.chain or "", ",".join(criterion.any_of))
            if inner is None:
                if criterion.modifier or len(targets) == 1:
                    raise BadRequest(f"{criterion.name}.{criterion.chain}: {target} has no parameter "
                                     f"{inner_key!r}", expression=[criterion.name])
                continue
            found = await self.matching(target, (inner,), self.narrowing_for(target))
            if found is None:
                raise BadRequest(f"{criterion.name}.{criterion.chain}: the chain needs a criterion")
            ids[target] = {key.split("/", 1)[1] for key in found}
        matches = tuple(EntryMatch("", system=target,
                                   any_key=tuple(sorted(keys.make_key(rtype, criterion.name, i) for i in found)))
                        for target, found in ids.items() if found)
        return Plan(matches) if matches else Plan(keys=frozenset())

    async def _has(self, rtype: str, criterion: Criterion) -> Plan:
        source, param, rest = criterion.has or ("", "", "")
        definition = params_for(source).get(param)
        if definition is None or definition.type != "reference":
            raise BadRequest(f"_has:{source}:{param}: not a reference parameter of {source}",
                             expression=["_has"])
        inner = parse_criterion(source, rest, ",".join(criterion.any_of))
        if inner is None:
            raise BadRequest(f"_has:{source}:{param}:{rest}: {source} has no parameter {rest!r}",
                             expression=["_has"])
        found = await self.matching(source, (inner,), self.narrowing_for(source))
        if found is None:
            raise BadRequest("_has needs a criterion", expression=["_has"])
        entries = await self.store.entries(EntryMatch(keys.param_prefix(source, param), prefix=True, system=rtype,
                                                      resources=tuple(sorted(found)))) if found else []
        return Plan(keys=frozenset(resource_key(rtype, keys.value_of(entry_key(e))) for e in entries))

    async def _last_updated(self, rtype: str, criterion: Criterion) -> set[str]:
        """``_lastUpdated`` is answered by the current documents' ``ts``, a point in time."""
        found: set[str] = set()
        for value in criterion.any_of:
            prefix, text = split_prefix(unescape(value))
            span = date_range(text)
            if span is None:
                raise BadRequest(f"_lastUpdated: {text!r} is not a FHIR date", expression=["_lastUpdated"])
            low, high = _widened(prefix, *span)
            bounds = {"eq": (low, high), "ap": (low, high), "gt": (high + 1, None), "sa": (high + 1, None),
                      "ge": (low, None), "lt": (None, low - 1), "eb": (None, low - 1), "le": (None, high)}
            if prefix == "ne":
                found |= await self.store.live_keys_updated(rtype, None, low - 1)
                found |= await self.store.live_keys_updated(rtype, high + 1, None)
            else:
                found |= await self.store.live_keys_updated(rtype, *bounds[prefix])
        return found

    def reference_target(self, rtype: str, name: str, modifier: str | None, value: str) -> tuple[str | None, str]:
        """(target type or None for any, id or URL) of a reference search value."""
        value = unescape(value)
        if self.base_url and value.startswith(self.base_url + "/"):
            value = value[len(self.base_url) + 1:]
        target_type, target = keys.split_reference(value)
        if target_type != keys.URL_TARGET:
            if modifier and modifier != target_type:
                return modifier, "\x00"  # Patient/1 asked as :Practitioner matches nothing
            return target_type, target
        if "/" not in value and ":" not in value:  # a bare id
            targets = params_for(rtype)[name].targets
            return (modifier or (targets[0] if len(targets) == 1 else None)), value
        return keys.URL_TARGET, value


def _widened(prefix: str, low: int, high: int) -> tuple[int, int]:
    """``ap``: the spec leaves the width to servers; this one allows 10% of the distance to now, at least a day."""
    if prefix != "ap":
        return low, high
    slack = max(_DAY, abs(int(time.time() * 1_000_000) - low) // 10)
    return low - slack, high + slack


def _within(match: EntryMatch, within: set[str]) -> EntryMatch:
    return replace(match, resources=tuple(sorted(within)))


def _scoped(plan: Plan, scope: str | None) -> Plan:
    if scope is None or not plan.matches:
        return plan
    return replace(plan, matches=tuple(replace(m, scope=scope) for m in plan.matches))


def _any_test(plans: list[Plan]) -> EntryTest:
    tests = [p.test for p in plans]

    def test(entry: dict[str, Any]) -> bool:
        return any(t is None or t(entry) for t in tests)

    return test


_COST = {"_id": 0, "_has": 5, "reference": 1, "token": 2, "uri": 2, "composite": 3, "string": 4, "date": 5,
         "quantity": 6, "number": 6}


def _by_cost(criteria: tuple[Criterion, ...]) -> list[Criterion]:
    def cost(c: Criterion) -> int:
        if c.name in ("_id", "_has"):
            return _COST[c.name]
        return 9 if c.modifier in ("not", "missing", "contains") else 5 if c.chain else 3
    return sorted(criteria, key=cost)


# ------------------------------------------------------------------------------- value builders
def _token(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    if modifier == "text":  # a string search on the words beside the code
        text = normalize_text(unescape(value))
        return Plan((EntryMatch(keys.make_key(rtype, name + keys.TOKEN_TEXT, text), prefix=True),))
    if modifier == "of-type":
        parts = split_pipes(value, 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise BadRequest(f"{name}:of-type: the value is type-system|type-code|identifier-value",
                             expression=[name])
        type_system, type_code, identifier = parts
        return Plan((EntryMatch(keys.make_key(rtype, name + keys.OF_TYPE, f"{type_code}|{identifier}"),
                                system=type_system),))
    system, code = split_token(value)
    return Plan((keys.token_match(rtype, name, system, code),))


def _string(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    text = unescape(value)
    normalized = normalize_text(text)
    if modifier == "exact":
        return Plan((EntryMatch(keys.make_key(rtype, name, normalized)),), test=lambda e: e.get("v") == text)
    if modifier == "contains":
        return Plan((EntryMatch(keys.param_prefix(rtype, name), prefix=True, contains=keys.escape(normalized)),))
    return Plan((EntryMatch(keys.make_key(rtype, name, normalized), prefix=True),))


def _reference(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    target_type, target = ev.reference_target(rtype, name, modifier, value)
    return Plan((EntryMatch(keys.make_key(rtype, name, target), system=target_type),))


def _uri(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    uri = unescape(value)
    if modifier == "below":
        return Plan((EntryMatch(keys.make_key(rtype, name, uri), prefix=True),))
    if modifier == "above":
        parts = uri.split("/")
        prefixes = tuple(keys.make_key(rtype, name, "/".join(parts[:i])) for i in range(3, len(parts) + 1))
        return Plan((EntryMatch("", any_key=prefixes or (keys.make_key(rtype, name, uri),)),))
    return Plan((EntryMatch(keys.make_key(rtype, name, uri)),))


def _date(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    prefix, text = split_prefix(unescape(value))
    found = date_range(text)
    if found is None:
        raise BadRequest(f"{name}: {text!r} is not a FHIR date", expression=[name])
    low, high = _widened(prefix, *found)
    test = _range_test(prefix, low, high)
    start, end = keys.param_prefix(rtype, name), keys.param_prefix(rtype, name) + "~"
    span_end = keys.param_prefix(rtype, name + keys.DATE_END) + "~"

    def lo_key(micros: int) -> str:
        return keys.make_key(rtype, name, sortable_time(micros))

    def hi_key(micros: int) -> str:
        return keys.make_key(rtype, name + keys.DATE_END, sortable_time(micros))

    # Entries spanning at most a day are found by their start; longer ones also by their end (date:end).
    if prefix == "eq":
        matches = [EntryMatch(lo_key(low), upper=lo_key(high + 1))]
    elif prefix == "ap":  # overlapping: a short range starts at most a day before, a long one ends after
        matches = [EntryMatch(lo_key(low - _DAY), upper=lo_key(high + 1)), EntryMatch(hi_key(low), upper=span_end)]
    elif prefix == "ne":  # per value, like the others: a resource with one date inside and one outside matches
        matches = [EntryMatch(start, upper=end)]
    elif prefix in ("lt", "eb"):
        matches = [EntryMatch(start, upper=lo_key(low))]
    elif prefix == "le":
        matches = [EntryMatch(start, upper=lo_key(high + 1))]
    elif prefix == "sa":
        matches = [EntryMatch(lo_key(high + 1), upper=end)]
    else:  # gt, ge: ending after the search range (or, ge, within it)
        matches = [EntryMatch(lo_key(min(low, high) - _DAY), upper=end), EntryMatch(hi_key(high + 1), upper=span_end)]
    return Plan(tuple(matches), test)


def _range_test(prefix: str, low: float, high: float, *, closed: bool = True) -> EntryTest:
    """The search specification's prefix semantics between the search range and an entry's range.

    Date ranges are closed (whole microseconds, ``high`` the last one); decimal ranges are half-open
    (``100`` is [99.5, 100.5)), so that ``sa100`` finds 101, whose range starts where 100's ends. Both
    are compared as half-open ranges.
    """
    end = high + 1 if closed else high

    def test(entry: dict[str, Any]) -> bool:
        lo, hi = entry.get("lo"), entry.get("hi")
        if lo is None or hi is None:
            return False
        if closed:
            hi += 1
        contained = lo >= low and hi <= end
        return {
            "eq": contained,
            "ap": lo < end and hi > low,
            "gt": hi > end,
            "lt": lo < low,
            "ge": hi > end or contained,
            "le": lo < low or contained,
            "sa": lo >= end,
            "eb": hi <= low,
            "ne": not contained,
        }[prefix]
    return test


def _number(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    prefix, text = split_prefix(unescape(value))
    return Plan((EntryMatch(keys.make_key(rtype, name, keys.NUMBER)),), _quantity_test(name, prefix, text, None, None))


def _quantity(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    prefix, text, system, code = _split_quantity(value)
    return Plan((EntryMatch(keys.make_key(rtype, name, keys.NUMBER)),), _quantity_test(name, prefix, text, system,
                                                                                        code))


def _split_quantity(value: str) -> tuple[str, str, str | None, str | None]:
    """``gt5.4|http://unitsofmeasure.org|mg`` -> ("gt", "5.4", "http://unitsofmeasure.org", "mg")."""
    parts = split_pipes(value, 2)
    number, system, code = parts if len(parts) == 3 else (parts[0], "", parts[1] if len(parts) == 2 else "")
    prefix, text = split_prefix(number)
    return prefix, text, system or None, code or None


def _quantity_test(name: str, prefix: str, text: str, system: str | None, code: str | None) -> EntryTest:
    found = decimal_range(text)
    if found is None:
        raise BadRequest(f"{name}: {text!r} is not a number", expression=[name])
    low, high = found
    if prefix == "ap":  # the spec suggests 10%
        low, high = low - abs(low) * 0.1, high + abs(high) * 0.1
    in_range = _exact_test(prefix, Decimal(text)) if prefix in _EXACT else _range_test(prefix, low, high, closed=False)

    def test(entry: dict[str, Any]) -> bool:
        if system is not None and entry.get("s") != f"{system}|{code or ''}":
            return False
        if system is None and code is not None:
            unit_code = (entry.get("s") or "|").split("|", 1)[1]
            if code not in (unit_code, entry.get("v")):
                return False
        return in_range(entry)

    return test


# R4 search.html#number: "gt100: values that are greater than exactly 100"; only eq, ne and ap (and sa, eb,
# which compare ranges by definition) use the implicit precision range. A stored value compares as written.
_EXACT: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "gt": lambda stored, searched: stored > searched, "lt": lambda stored, searched: stored < searched,
    "ge": lambda stored, searched: stored >= searched, "le": lambda stored, searched: stored <= searched,
}


def _exact_test(prefix: str, searched: Decimal) -> EntryTest:
    compare = _EXACT[prefix]

    def test(entry: dict[str, Any]) -> bool:
        lo, hi = entry.get("lo"), entry.get("hi")
        stored = None if lo is None or hi is None else decimal_of_range(lo, hi)
        return stored is not None and compare(stored, searched)
    return test


def _composite(ev: Evaluator, rtype: str, name: str, modifier: str | None, value: str) -> Plan:
    head, dollar, tail = value.partition("$")
    if not dollar:
        raise BadRequest(f"{name}: a composite value is two parts joined by $", expression=[name])
    system, code = split_token(head)
    param = params_for(rtype)[name]
    second = param.roots[0].components[1].type if param.roots else "token"
    second_test: Callable[[dict[str, Any]], bool]
    if second == "token":
        wanted_system, wanted = split_token(tail)

        def second_test(entry: dict[str, Any]) -> bool:
            got_system, _, got = (entry.get("v") or "|").partition("|")
            return got == wanted and (wanted_system is None or got_system == wanted_system)
    elif second == "string":
        wanted_text = normalize_text(unescape(tail))

        def second_test(entry: dict[str, Any]) -> bool:
            return (entry.get("v") or "").startswith(wanted_text)
    elif second == "date":
        prefix, text = split_prefix(unescape(tail))
        found = date_range(text)
        if found is None:
            raise BadRequest(f"{name}: {text!r} is not a FHIR date", expression=[name])
        second_test = _range_test(prefix, *found)
    else:
        second_test = _quantity_test(name, *_split_quantity(tail))
    match = EntryMatch(keys.make_key(rtype, name, code), system=system)
    return Plan((match,), second_test)


_BUILDERS: dict[str, Callable[[Evaluator, str, str, str | None, str], Plan]] = {
    "token": _token, "string": _string, "reference": _reference, "uri": _uri, "date": _date,
    "number": _number, "quantity": _quantity, "composite": _composite,
}
