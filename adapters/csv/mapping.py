"""Mapping files: a clinic's CSV layout described in TOML, so that onboarding a clinic is writing a file.

See ``LAYOUT.md`` for the format. The loader is strict, because a mapping is written by hand once and then
runs unattended over thousands of rows: an unknown key, transform, code system, column or FHIR element is
an error naming the file, the key and (when it can be found) the line, raised before any row is read.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.csv.codes import CODE_SYSTEMS, code_system
from adapters.csv.dates import DATE_FORMATS, DEFAULT_FORMATS
from adapters.csv.paths import Step, parse_path, set_path
from adapters.csv.reader import fold
from adapters.csv.transforms import TRANSFORMS

MAPPINGS_DIR = Path(__file__).with_name("mappings")
BUNDLED = {"hub-csv-v1": "hub-csv-v1.toml", "synthea": "synthea.toml"}
MAPPING_FORMAT = 1
_RULE_KEYS = frozenset({"aliases", "transform", "element", "required", "when", "also"})
_TABLE_KEYS = frozenset({"resource", "files", "order", "columns", "fixed", "match", "required_any", "description"})
_TOP_KEYS = frozenset({"mapping_format", "layout", "version", "title", "facility", "timezone", "date_formats",
                       "tables", "not_mapped"})
_CHOICE_MISSING = "Expect any of field value from this list"  # how the models say "a required [x] is absent"
_TEMPLATE = re.compile(r"\{([^{}]+)\}")


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file, the key and the line."""


@dataclass(frozen=True)
class Rule:
    """How one column becomes FHIR: ``column`` is the mapping's (canonical) name for it."""

    column: str
    names: frozenset[str]  # folded header names that mean this column
    transform: str
    element: tuple[Step, ...] | None
    required: bool = False
    when: str | None = None
    also: tuple[tuple[tuple[Step, ...], Any], ...] = ()
    formats: tuple[str, ...] = ()
    values: dict[str, str] | None = None
    default: str | None = None
    system: str | None = None
    system_column: str | None = None
    systems: dict[str, str] | None = None
    display_column: str | None = None
    display: str | None = None
    unit: str | None = None
    unit_column: str | None = None
    type_column: str | None = None
    code: str | None = None
    range: tuple[float, float] | None = None


@dataclass(frozen=True)
class Match:
    """The business identifier a non-Patient resource is matched on: ``facility_system(kind, facility)``
    and a value rendered from the row (``{col}``, ``{a|b}`` = first non-empty, ``{loinc}`` = the code of the
    observation being built)."""

    kind: str
    value: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    resource: str
    files: tuple[str, ...]
    order: int
    rules: tuple[Rule, ...]
    fixed: tuple[tuple[tuple[Step, ...], Any], ...]
    match: Match | None
    required_any: tuple[str, ...] = ()

    def rule(self, column: str) -> Rule:
        return next(r for r in self.rules if r.column == column)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(r.column for r in self.rules if r.required)

    def matches_file(self, filename: str) -> bool:
        return matches_any(filename, self.files)


@dataclass(frozen=True)
class CsvMapping:
    layout: str
    version: int
    origin: str
    tables: dict[str, TableSpec]
    title: str = ""
    facility: str | None = None
    timezone: str = "+07:00"
    date_formats: tuple[str, ...] = DEFAULT_FORMATS
    not_mapped: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.layout} v{self.version}"


def matches_any(filename: str, patterns: tuple[str, ...]) -> bool:
    name = Path(filename.replace("\\", "/")).name.lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns)


def load_mapping(source: str | Path = "hub-csv-v1") -> CsvMapping:
    """A bundled mapping by name (``hub-csv-v1``, ``synthea``) or a TOML file by path."""
    path = MAPPINGS_DIR / BUNDLED[str(source)] if str(source) in BUNDLED else Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file ({exc.strerror or exc})") from None
    return parse_mapping(text, origin=path.name)


def parse_mapping(text: str, origin: str = "<mapping>") -> CsvMapping:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{origin}: not valid TOML: {exc}") from None
    return _Loader(text, origin).mapping(data)


class _Loader:
    """Checks a parsed mapping key by key, so that each error can say where it is."""

    def __init__(self, text: str, origin: str) -> None:
        self.lines = text.splitlines()
        self.origin = origin

    def fail(self, key: str, message: str) -> MappingError:
        line = self._line_of(key)
        where = f"{self.origin}:{line}" if line else self.origin
        return MappingError(f"{where}: {key}: {message}")

    def _line_of(self, key: str) -> int | None:
        """Best effort: the line of ``key`` (``tables.visits.columns.ngay.transform``): the deepest
        ``[section]`` header that prefixes it, then the ``name =`` line below it."""
        parts = key.split(".")
        for cut in range(len(parts), 0, -1):
            header = "[" + ".".join(parts[:cut]) + "]"
            start = next((i for i, line in enumerate(self.lines) if line.strip() == header), None)
            if start is None:
                continue
            rest = parts[cut:]
            if not rest:
                return start + 1
            for i in range(start + 1, len(self.lines)):
                stripped = self.lines[i].strip()
                if stripped.startswith("["):
                    break
                if re.match(rf'"?{re.escape(rest[0])}"?\s*=', stripped):
                    return i + 1
            return start + 1
        if len(parts) == 1:
            return next((i + 1 for i, line in enumerate(self.lines) if line.startswith(f"{parts[0]} ")), None)
        return None

    # ------------------------------------------------------------------------------------------- top
    def mapping(self, data: dict[str, Any]) -> CsvMapping:
        self._known_keys(data, _TOP_KEYS, "")
        if data.get("mapping_format", MAPPING_FORMAT) != MAPPING_FORMAT:
            raise self.fail("mapping_format", f"this hub reads mapping format {MAPPING_FORMAT} only")
        layout, version = data.get("layout"), data.get("version")
        if not isinstance(layout, str) or not layout:
            raise self.fail("layout", "the layout's name is required (e.g. layout = \"hub-csv\")")
        if not isinstance(version, int) or version < 1:
            raise self.fail("version", "the layout's version is required, a whole number (version = 1)")
        formats = self._formats(data.get("date_formats", list(DEFAULT_FORMATS)), "date_formats")
        tables_data = data.get("tables")
        if not isinstance(tables_data, dict) or not tables_data:
            raise self.fail("tables", "at least one [tables.<name>] section is required")
        tables = {name: self.table(name, spec) for name, spec in tables_data.items()}
        return CsvMapping(
            layout=layout, version=version, origin=self.origin, tables=tables,
            title=self._str(data, "title", "") or "", facility=self._str(data, "facility", None),
            timezone=self._str(data, "timezone", "+07:00") or "+07:00", date_formats=formats,
            not_mapped=tuple(self._str_list(data.get("not_mapped", []), "not_mapped")),
        )

    def _known_keys(self, data: dict[str, Any], known: frozenset[str], prefix: str) -> None:
        for key in data:
            if key not in known:
                raise self.fail(f"{prefix}{key}", f"unknown key; expected one of {', '.join(sorted(known))}")

    def _str(self, data: dict[str, Any], key: str, default: str | None, prefix: str = "") -> str | None:
        value = data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{prefix}{key}", "must be a string")
        return value

    def _str_list(self, value: Any, key: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a list of strings")
        return value

    def _formats(self, value: Any, key: str) -> tuple[str, ...]:
        formats = self._str_list(value, key)
        for name in formats:
            if name not in DATE_FORMATS:
                raise self.fail(key, f"unknown date format {name!r}; known: {', '.join(DATE_FORMATS)}")
        if "dd/mm/yyyy" in formats and "mm/dd/yyyy" in formats:
            raise self.fail(key, "dd/mm/yyyy and mm/dd/yyyy together are ambiguous: a clinic uses one")
        return tuple(formats)

    def _path(self, text: Any, key: str) -> tuple[Step, ...]:
        if not isinstance(text, str):
            raise self.fail(key, "an element path must be a string")
        try:
            return parse_path(text)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    # ----------------------------------------------------------------------------------------- tables
    def table(self, name: str, data: Any) -> TableSpec:
        prefix = f"tables.{name}"
        if not isinstance(data, dict):
            raise self.fail(prefix, "must be a table")
        self._known_keys(data, _TABLE_KEYS, prefix + ".")
        resource = self._str(data, "resource", None, prefix + ".")
        if not resource:
            raise self.fail(prefix + ".resource", "the FHIR resource type the rows become is required")
        columns = data.get("columns")
        if not isinstance(columns, dict) or not columns:
            raise self.fail(prefix + ".columns", "at least one column is required")
        rules = tuple(self.rule(f"{prefix}.columns.{col}", col, spec, resource) for col, spec in columns.items())
        fixed_data = data.get("fixed", {})
        if not isinstance(fixed_data, dict):
            raise self.fail(prefix + ".fixed", "must be a table of element path = value")
        fixed = tuple((self._path(path, f"{prefix}.fixed.{path}"), value) for path, value in fixed_data.items())
        order = data.get("order", 50)
        if not isinstance(order, int):
            raise self.fail(prefix + ".order", "must be a whole number")
        table = TableSpec(name, resource, tuple(self._str_list(data.get("files", []), prefix + ".files")), order,
                          rules, fixed, self.match(data.get("match"), prefix + ".match", resource),
                          tuple(self._str_list(data.get("required_any", []), prefix + ".required_any")))
        self._check_references(table, prefix)
        _Probe(self, table, prefix).run()
        return table

    def match(self, data: Any, key: str, resource: str) -> Match | None:
        if data is None:
            if resource == "Patient":
                return None  # a Patient is matched on its strongest identifier (normalize.patient_identifiers)
            raise self.fail(key, f"a {resource} table needs [match] kind and value, to make re-ingesting idempotent")
        if not isinstance(data, dict) or set(data) != {"kind", "value"}:
            raise self.fail(key, "must have exactly `kind` (e.g. \"visit\") and `value` (e.g. \"{visit_id}\")")
        if not all(isinstance(v, str) and v for v in data.values()):
            raise self.fail(key, "kind and value must be non-empty strings")
        return Match(data["kind"], data["value"])

    def _check_references(self, table: TableSpec, prefix: str) -> None:
        """Every column another part of the table names must be declared, or it would silently be empty."""
        declared = {r.column for r in table.rules}
        refs: list[tuple[str, str | None]] = [(f"{prefix}.required_any", c) for c in table.required_any]
        for r in table.rules:
            base = f"{prefix}.columns.{r.column}"
            refs += [(f"{base}.when", r.when), (f"{base}.display_column", r.display_column),
                     (f"{base}.system_column", r.system_column), (f"{base}.unit_column", r.unit_column),
                     (f"{base}.type_column", r.type_column)]
        if table.match:
            for group in _TEMPLATE.findall(table.match.value):
                refs += [(f"{prefix}.match.value", c) for c in group.split("|") if c != "loinc"]
        for key, column in refs:
            if column is not None and column not in declared:
                raise self.fail(key, f"names the column {column!r}, which is not declared under {prefix}.columns")

    # ------------------------------------------------------------------------------------------ rules
    def rule(self, key: str, column: str, data: Any, resource: str) -> Rule:
        if not isinstance(data, dict):
            raise self.fail(key, "must be a table (transform, element, aliases...)")
        transform = data.get("transform", "text")
        spec = TRANSFORMS.get(transform) if isinstance(transform, str) else None
        if spec is None:
            raise self.fail(f"{key}.transform", f"unknown transform {transform!r}; known: {', '.join(TRANSFORMS)}")
        self._known_keys(data, _RULE_KEYS | spec.params, key + ".")
        element = data.get("element", "identifier[+]" if transform == "identifier" else None)
        if element is None and spec.element == "required":
            raise self.fail(key, f"transform {transform!r} needs an `element` (where the value goes)")
        if element is not None and spec.element == "none":
            raise self.fail(f"{key}.element", f"transform {transform!r} places its result itself; drop `element`")
        also = data.get("also", {})
        if not isinstance(also, dict):
            raise self.fail(f"{key}.also", "must be a table of element path = value")
        names = [column, *self._str_list(data.get("aliases", []), f"{key}.aliases")]
        kwargs: dict[str, Any] = {}
        for param in spec.params:
            if param in data:
                kwargs[param] = self._param(param, data[param], f"{key}.{param}", transform)
        required = data.get("required", False)
        if not isinstance(required, bool):
            raise self.fail(f"{key}.required", "must be true or false")
        return Rule(column=column, names=frozenset(fold(n) for n in names), transform=transform,
                    element=None if element is None else self._path(element, f"{key}.element"),
                    required=required, when=self._str(data, "when", None, key + "."),
                    also=tuple((self._path(p, f"{key}.also.{p}"), v) for p, v in also.items()), **kwargs)

    def _param(self, param: str, value: Any, key: str, transform: str) -> Any:
        if param == "formats":
            return self._formats(value, key)
        if param in ("values", "systems"):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise self.fail(key, "must be a table of \"value as sent\" = \"value to store\"")
            if param == "systems":
                return {fold(k): self._code_system(v, key) for k, v in value.items()}
            return {fold(k): v for k, v in value.items()}
        if param == "range":
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, int | float) for v in value) or value[0] > value[1]):
                raise self.fail(key, "must be [low, high]")
            return (float(value[0]), float(value[1]))
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        if param == "system" and transform != "identifier":
            return self._code_system(value, key)
        return value

    def _code_system(self, name: str, key: str) -> str:
        try:
            return code_system(name)
        except KeyError:
            raise self.fail(key, f"unknown code system {name!r}: use a short name ({', '.join(CODE_SYSTEMS)}) "
                                 "or a URI") from None


class _Probe:
    """Checks a table's element paths against the R4B models: each rule's typical result is put where the
    rule says and the resource validated; anything but "required element missing" is the mapping's fault."""

    def __init__(self, loader: _Loader, table: TableSpec, prefix: str) -> None:
        self.loader, self.table, self.prefix = loader, table, prefix

    def run(self) -> None:
        self.check(self.base(), f"{self.prefix}.fixed")
        for rule in self.table.rules:
            key = f"{self.prefix}.columns.{rule.column}"
            resource = self.base()
            sample = copy.deepcopy(TRANSFORMS[rule.transform].sample)
            if rule.transform == "enum":
                sample = rule.default or next(iter((rule.values or {"x": "x"}).values()))
            if rule.element is not None:
                set_path(resource, rule.element, sample)
            elif isinstance(sample, dict):
                resource.update(sample)
            for path, value in rule.also:
                set_path(resource, path, copy.deepcopy(value))
            self.check(resource, key)

    def base(self) -> dict[str, Any]:
        resource: dict[str, Any] = {"resourceType": self.table.resource}
        for path, value in self.table.fixed:
            set_path(resource, path, copy.deepcopy(value))  # the mapping's own values must stay untouched
        return resource

    def check(self, resource: dict[str, Any], key: str) -> None:
        from fhir_hub.errors import HubError
        from fhir_hub.fhir.validation import validate_resource

        try:
            validate_resource(resource)
        except HubError as exc:
            issues = [i for i in exc.issues if i.code != "required" and _CHOICE_MISSING not in i.diagnostics]
            if issues:
                detail = "; ".join(i.diagnostics for i in issues)
                raise self.loader.fail(key, f"does not fit the {self.table.resource} resource: {detail}") from None
