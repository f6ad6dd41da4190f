"""One CSV row -> one Record: the row's resources, each a conditional create, in a transaction Bundle.

Every problem of a row is collected before it is judged, so that a clinic fixing its export sees all of a
row's mistakes at once; a row with any blocking problem is rejected alone and the file's other rows map.
Each resource is validated against the R4B models here, so that a mapping mistake surfaces as a rejected
row with the element named, never as a failed transaction inside the hub.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from adapters.base import FacilityRefused, Mapping, Record, Source
from adapters.csv.mapping import CsvMapping, Rule, TableSpec
from adapters.csv.paths import set_path
from adapters.csv.reader import Row
from adapters.csv.transforms import TRANSFORMS, RowContext, RowError
from adapters.normalize import (
    RecordBundle,
    birth_year,
    facility_system,
    identifier,
    insurance_card_problems,
    nfc,
    patient_identifiers,
    personal_id_problems,
)
from fhir_hub.errors import HubError
from fhir_hub.fhir.validation import validate_resource


@dataclass(frozen=True)
class FileContext:
    """What is the same for every row of one file: which column of the file each rule reads."""

    mapping: CsvMapping
    table: TableSpec
    columns: dict[str, int]  # rule column -> index in the file's header
    header: list[str]
    filename: str
    source: Source

    def field(self, column: str) -> str:
        """``file:column`` as the clinic wrote the column's header, so they can find it in their file."""
        index = self.columns.get(column)
        return f"{self.filename}:{self.header[index] if index is not None else column}"


def map_row(file: FileContext, row: Row, out: Mapping) -> None:
    key = f"{file.filename} line {row.line}"
    if row.problem is not None:
        out.reject(key, file.filename, row.problem)
        return
    errors: list[RowError] = []
    if len(row.values) > len(file.header) and any(v.strip() for v in row.values[len(file.header):]):
        out.reject(key, file.filename, f"the row has {len(row.values)} fields but the header only "
                                       f"{len(file.header)}: an unquoted delimiter inside a value?")
        return
    values = {c: nfc(row.values[i]) if i < len(row.values) else "" for c, i in file.columns.items()}
    try:
        facility = _facility(file, values)
    except FacilityRefused as exc:
        out.reject(key, exc.field, exc.message)
        return
    ctx = RowContext(values, facility, file.mapping, file.table)
    resources = _resources(file.table, ctx, errors)
    for column, message in dict.fromkeys((e.column, str(e)) for e in errors):  # one report per distinct cause
        out.reject(key, file.field(column), message)
    if errors or not resources:
        return
    for resource, _ in resources:
        try:
            validate_resource(resource)
        except HubError as exc:
            out.reject(key, file.filename, f"{resource['resourceType']} would not be valid FHIR: {exc}")
            return
    bundle = RecordBundle(file.source, ctx.facility)
    for resource, match in resources:
        bundle.add(resource, match)
    out.records.append(Record(key, bundle.bundle(), ctx.facility))
    for column, message in ctx.warnings:
        out.warn(key, file.field(column), message)


def _facility(file: FileContext, values: dict[str, str]) -> str | None:
    """The row's facility column when the caller may send for it (``Source.facility_of``; raises
    ``FacilityRefused`` naming the column), else the caller's token; then the mapping's."""
    column = next((r.column for r in file.table.rules if r.transform == "facility" and values.get(r.column)), None)
    named = values[column] if column else None
    return file.source.facility_of(named, file.field(column or "facility")) or file.mapping.facility


def _resources(table: TableSpec, ctx: RowContext, errors: list[RowError]) -> list[tuple[dict[str, Any], Any]]:
    """The row's resources with the identifier each is matched on."""
    for rule in table.rules:
        if rule.required and not ctx.values.get(rule.column):
            errors.append(RowError(rule.column, "a value is required"))
    if table.required_any and not any(ctx.values.get(c) for c in table.required_any):
        errors.append(RowError(table.required_any[0], f"one of {', '.join(table.required_any)} is required"))
    resource: dict[str, Any] = {"resourceType": table.resource}
    for path, value in table.fixed:
        set_path(resource, path, copy.deepcopy(value))
    measured: list[dict[str, Any]] = []
    for rule in table.rules:
        fragment = _apply(rule, ctx, errors)
        if fragment is None:
            continue
        if TRANSFORMS[rule.transform].observation:
            measured.append(fragment)
        elif rule.element is not None:
            set_path(resource, rule.element, fragment)
        else:
            resource.update(fragment)
        for path, value in rule.also:
            set_path(resource, path, copy.deepcopy(value))
    if any(TRANSFORMS[r.transform].observation for r in table.rules):
        if not measured and not errors:
            errors.append(RowError(table.rules[0].column, "the row has no measurement"))
        out = [({**copy.deepcopy(resource), **m}, _match(table, ctx, errors, m["code"]["coding"][0]["code"]))
               for m in measured]
    elif table.resource == "Patient":
        out = [(resource, _patient_match(resource, ctx, errors))]
    else:
        out = [(resource, _match(table, ctx, errors, ""))]
    return [] if errors else out


def _apply(rule: Rule, ctx: RowContext, errors: list[RowError]) -> Any:
    value = ctx.values.get(rule.column, "")
    if not value or (rule.when and not ctx.values.get(rule.when)):
        return None
    try:
        result = TRANSFORMS[rule.transform].fn(value, rule, ctx)
    except RowError as error:
        errors.append(error)
        return None
    if isinstance(result, str):
        ctx.keys[rule.column] = result  # "01/10/2023" and "2023-10-01" must give the same match identifier
    elif rule.transform == "icd10":
        ctx.keys[rule.column] = result["coding"][0]["code"]
    return result


def _match(table: TableSpec, ctx: RowContext, errors: list[RowError], loinc: str) -> dict[str, Any] | None:
    if table.match is None:
        return None
    column = next((r.column for r in table.rules if r.required), table.rules[0].column)
    try:
        system = facility_system(table.match.kind, ctx.need_facility(column))
    except RowError as error:
        errors.append(error)
        return None
    return identifier(system, render(table.match.value, {**ctx.values, **ctx.keys}, loinc))


def render(template: str, values: dict[str, str], loinc: str = "") -> str:
    """``{a|b}/condition/{code}`` filled from the row: ``{a|b}`` is the first of a, b that has a value."""
    out, rest = [], template
    while "{" in rest:
        before, _, tail = rest.partition("{")
        names, _, rest = tail.partition("}")
        options = [loinc if n == "loinc" else values.get(n, "") for n in names.split("|")]
        out += [before, next((o for o in options if o), "")]
    return "".join([*out, rest])


def _patient_match(resource: dict[str, Any], ctx: RowContext, errors: list[RowError]) -> dict[str, Any] | None:
    """A Patient is matched on its strongest identifier; doubtful identifiers are kept and reported."""
    ids = ctx.patient_ids
    found = patient_identifiers(cccd=ids.get("cccd"), bhyt=ids.get("bhyt"), cmnd=ids.get("cmnd"),
                                facility=ctx.facility, local_id=ids.get("ma-bn"))
    columns = {r.system.lower(): r.column for r in ctx.table.rules if r.transform == "identifier" and r.system}
    if ids.get("cccd"):
        for problem in personal_id_problems(ids["cccd"], birth_year=birth_year(resource.get("birthDate")),
                                            gender=resource.get("gender")):
            ctx.warn(columns["cccd"], problem)
    for card in (c.strip() for c in ids.get("bhyt", "").split(";") if c.strip()):
        for problem in insurance_card_problems(card):
            ctx.warn(columns["bhyt"], problem)
    if not found:
        if ids.get("ma-bn"):
            errors.append(RowError(columns["ma-bn"], "no identifier to match the patient on: the patient "
                                   "number needs a facility code (facility column, facility token or the "
                                   "mapping's `facility`)"))
        else:
            errors.append(RowError(ctx.table.rules[0].column, "no identifier to match the patient on"))
        return None
    resource["identifier"] = [*found, *resource.get("identifier", [])]
    return found[0]
