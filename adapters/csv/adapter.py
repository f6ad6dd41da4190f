"""The CSV adapter: one payload is one file of one table; each data row becomes one Record.

Which table a file holds is decided from its name (``patients*.csv``), else from its header, else the
caller's ``table`` hint wins outright. Rows refer to patients by the clinic's patient number, so a
patients file must be ingested before the files that refer to it: ``ingest_order`` sorts a folder that way.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path, PurePath
from typing import TypeVar

from adapters.base import Mapping, Source
from adapters.csv.build import FileContext, map_row
from adapters.csv.mapping import CsvMapping, TableSpec, load_mapping, matches_any
from adapters.csv.reader import DELIMITERS, Row, decode, first_line, fold, read_table, sniff_delimiter

FORMAT = "csv"
P = TypeVar("P", bound=str | PurePath)  # a bound, not constraints: Path in, Path out


@cache
def bundled(name: str) -> CsvMapping:
    """A mapping shipped with the hub, read once per process."""
    return load_mapping(name)


class CsvAdapter:
    """Clinic and commune-station CSV through a declarative mapping (default: the hub's own layout)."""

    format = FORMAT
    media_types: tuple[str, ...] = ("text/csv", "application/csv")

    def __init__(self, mapping: CsvMapping | str | Path | None = None) -> None:
        if mapping is None or (isinstance(mapping, str) and mapping in ("hub-csv-v1", "synthea")):
            self.mapping = bundled(mapping or "hub-csv-v1")
        elif isinstance(mapping, CsvMapping):
            self.mapping = mapping
        else:
            self.mapping = load_mapping(mapping)

    def detect(self, payload: bytes, filename: str | None = None) -> bool:
        """A ``.csv`` file name, or a first line that splits on a delimiter into a known table's header."""
        try:
            if filename and filename.lower().endswith(".csv"):
                return True
            line = first_line(decode(payload[:4096]))
            delimiter = sniff_delimiter(line)
            if delimiter not in line:
                return False
            header = [h.strip().strip('"') for h in line.split(delimiter)]
            return any(not missing_columns(t, header) for t in self.mapping.tables.values())
        except Exception:  # detect must never raise, whatever the bytes
            return False

    def map(self, payload: bytes, source: Source, *, filename: str | None = None,
            table: str | None = None) -> Mapping:
        """Map one file. ``filename`` (the ingest service passes it) names records and helps find the table;
        ``table`` names the mapping's table outright. Never raises: an unreadable file is one rejection."""
        name = PurePath((filename or "csv").replace("\\", "/")).name or "csv"
        out = Mapping(format=FORMAT, facility=source.facility)
        try:
            self._map(payload, source, name, filename, table, out)
        except Exception as exc:  # a bug must cost one file, not the ingest service
            out.reject(name, None, f"the CSV adapter failed on this file: {type(exc).__name__}: {exc}")
        return out

    def _map(self, payload: bytes, source: Source, name: str, filename: str | None, hint: str | None,
             out: Mapping) -> None:
        data = read_table(decode(payload))
        if data.problem is not None:
            out.reject(name, None, f"the header could not be read, so no row was: {data.problem}")
            return
        if not data.header:
            out.reject(name, None, "the file is empty: a header line and rows are expected")
            return
        spec, problem = choose_table(self.mapping, data.header, filename, hint)
        if spec is None:
            if problem is None:
                out.not_mapped.append(name)
            else:
                out.reject(name, None, problem)
            return
        columns = column_index(spec, data.header)
        used = set(columns.values())
        out.not_mapped += [f"{name}:{h}" for i, h in enumerate(data.header) if i not in used and h]
        file = FileContext(self.mapping, spec, columns, data.header, name, source)
        for row in data.rows:
            map_row(file, row, out)
        if out.facility is None:
            out.facility = next((f for f in _row_facilities(file, data.rows)), None) or self.mapping.facility


def _row_facilities(file: FileContext, rows: list[Row]) -> Iterable[str]:
    for rule in file.table.rules:
        if rule.transform == "facility" and rule.column in file.columns:
            index = file.columns[rule.column]
            yield from (r.values[index].strip() for r in rows if index < len(r.values) and r.values[index].strip())


def column_index(table: TableSpec, header: list[str]) -> dict[str, int]:
    """Which header each rule reads: the first whose folded name is the column's name or an alias."""
    folded = [fold(h) for h in header]
    index: dict[str, int] = {}
    for rule in table.rules:
        hit = next((i for i, f in enumerate(folded) if f in rule.names), None)
        if hit is not None:
            index[rule.column] = hit
    return index


def missing_columns(table: TableSpec, header: list[str]) -> list[str]:
    present = column_index(table, header)
    missing = [c for c in table.required if c not in present]
    if table.required_any and not any(c in present for c in table.required_any):
        missing.append(" or ".join(table.required_any))
    return missing


def choose_table(mapping: CsvMapping, header: list[str], filename: str | None,
                 hint: str | None) -> tuple[TableSpec | None, str | None]:
    """The table a file holds, or (None, why not); (None, None) for a file the mapping knowingly leaves
    out (``not_mapped``). A table whose name and header both fit wins; then a file the mapping leaves out
    by name; then the header alone, so that a badly named file still maps."""
    if hint is not None:
        spec = mapping.tables.get(hint) or next((t for t in mapping.tables.values() if fold(t.name) == fold(hint)),
                                                None)
        if spec is None:
            return None, f"{mapping.label} has no table {hint!r} (tables: {', '.join(mapping.tables)})"
        missing = missing_columns(spec, header)
        return (None, _missing_message(spec, missing)) if missing else (spec, None)
    tables = list(mapping.tables.values())
    named = [t for t in tables if filename and t.matches_file(filename)]
    fitting = [t for t in tables if not missing_columns(t, header)]
    for spec in named:
        if spec in fitting:
            return spec, None
    if filename and not named and matches_any(filename, mapping.not_mapped):
        return None, None
    if fitting:
        return max(fitting, key=lambda t: (len(column_index(t, header)), -len(t.rules))), None
    closest = named[0] if named else min(tables, key=lambda t: len(missing_columns(t, header)))
    return None, (f"the header matches no table of {mapping.label}; closest is {closest.name!r}, "
                  + _missing_message(closest, missing_columns(closest, header)))


def _missing_message(spec: TableSpec, missing: list[str]) -> str:
    return f"table {spec.name!r} needs the columns: {', '.join(missing)}"


def ingest_order(paths: Iterable[P], mapping: CsvMapping | None = None) -> list[P]:
    """``paths`` in the order their files must be ingested: patient files (and others the mapping ranks
    first, by each table's ``order``) before the visits, diagnoses and measurements that refer to them;
    files no table claims last; ties by name, so a folder always loads the same way."""
    mappings = [mapping] if mapping is not None else [bundled("hub-csv-v1"), bundled("synthea")]

    def rank(path: P) -> tuple[int, str]:
        name = PurePath(str(path).replace("\\", "/")).name
        orders = [t.order for m in mappings for t in m.tables.values() if t.matches_file(name)]
        if not orders and any(matches_any(name, m.not_mapped) for m in mappings):
            orders = [900]
        return (min(orders) if orders else 999, name.lower())

    return sorted(paths, key=rank)


__all__ = ["CsvAdapter", "DELIMITERS", "choose_table", "ingest_order"]
