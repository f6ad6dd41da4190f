"""CSV from commune health stations and small clinics, read through a declarative TOML mapping.

``CsvAdapter()`` reads the hub's own layout (``mappings/hub-csv-v1.toml``, documented in ``LAYOUT.md``);
``CsvAdapter("synthea")`` the Synthea CSV export; ``CsvAdapter(load_mapping(path))`` a clinic's own export.
Ingest patient files first: ``ingest_order`` sorts a folder that way.
"""

from adapters.csv.adapter import CsvAdapter, ingest_order
from adapters.csv.mapping import CsvMapping, MappingError, load_mapping, parse_mapping

__all__ = ["CsvAdapter", "CsvMapping", "MappingError", "ingest_order", "load_mapping", "parse_mapping"]
