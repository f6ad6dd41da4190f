"""Records per second for each ingest format, beside the raw parsing cost of the same input.

For each format, measured back to back on the same bytes:
- parse: the cheapest reading any ingester must do (MoH XML: the envelope and every base64 table parsed
  with ElementTree; CSV: ``csv.reader`` over the decoded text; HL7 v2: hl7apy's parse of each message
  (``adapters.hl7v2.parse``: unknown segments and versions tolerated); FHIR NDJSON: ``orjson.loads`` of each line);
- map: the adapter alone (parse + normalise + build the transaction Bundles);
- hub: ``POST /$ingest`` through the whole ASGI stack into the embedded store (archive, map, validate,
  commit each record, Provenance), in process.

Inputs: a generated MoH XML file (``--episodes``), the Synthea CSV patients and encounters, the HL7 v2
fixture messages that map (ADT, ORU, VXU), and the Synthea Bulk NDJSON encounters.
"""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import io
import json
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from adapters.base import Source
from adapters.csv import CsvAdapter
from adapters.fhir_json import FhirJsonAdapter
from adapters.hl7v2 import Hl7v2Adapter, split_messages
from adapters.hl7v2.parse import parse
from adapters.moh_xml import MohXmlAdapter
from adapters.moh_xml.generator import generate_file
from bench import results_header
from fhir_hub.auth.dev_tokens import development_token
from fhir_hub.config import Settings
from fhir_hub.main import create_app, ready_to_measure
from fhir_hub.store.embedded import EmbeddedStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
RESULTS = ROOT / "bench" / "results"
FACILITY = "79001"


def _rate(count: int, work: Callable[[], Any], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = max(best, count / (time.perf_counter() - started))
    return best


def _parse_moh(payload: bytes) -> None:
    for node in ET.fromstring(payload).iter("NOIDUNGFILE"):
        ET.fromstring(base64.b64decode(node.text or ""))


def _parse_csv(payload: bytes) -> None:
    for _row in csv.reader(io.StringIO(payload.decode("utf-8-sig"))):
        pass


def _parse_hl7(payload: bytes) -> None:
    for message in split_messages(payload).messages:
        parse(message)  # hl7apy, with only the tolerance the fixtures need (unknown segments, versions)


def _parse_ndjson(payload: bytes) -> None:
    for line in payload.splitlines():
        orjson.loads(line)


def inputs(episodes: int) -> list[dict[str, Any]]:
    """(format, file name, bytes, adapter, raw parser, media type) of each benchmarked input."""
    hl7 = sorted((FIXTURES / "hl7v2" / "messages").glob("*.hl7"))
    hl7_payload = b"\n".join(p.read_bytes().removeprefix(b"\xef\xbb\xbf").strip() for p in hl7
                             if p.name.startswith(("ADT", "ORU", "LAB-ORU", "VXU", "IZ")))
    synthea_csv = FIXTURES / "synthea-csv-27pt"
    return [
        {"format": "moh-xml", "file": "moh.xml", "payload": generate_file(1, episodes=episodes,
                                                                         facility=FACILITY).payload,
         "adapter": MohXmlAdapter(), "parse": _parse_moh, "media": "application/xml"},
        {"format": "csv", "file": "patients.csv", "payload": (synthea_csv / "patients.csv").read_bytes(),
         "adapter": CsvAdapter("synthea"), "parse": _parse_csv, "media": "text/csv"},
        {"format": "csv", "file": "encounters.csv", "payload": (synthea_csv / "encounters.csv").read_bytes(),
         "adapter": CsvAdapter("synthea"), "parse": _parse_csv, "media": "text/csv"},
        {"format": "hl7v2", "file": "messages.hl7", "payload": hl7_payload, "adapter": Hl7v2Adapter(),
         "parse": _parse_hl7, "media": "x-application/hl7-v2+er7"},
        {"format": "fhir", "file": "Encounter.ndjson",
         "payload": (FIXTURES / "synthea-bulk-ndjson-10pt" / "Encounter.000.ndjson").read_bytes(),
         "adapter": FhirJsonAdapter(), "parse": _parse_ndjson, "media": "application/fhir+ndjson"},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="episodes in the generated MoH XML file (200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the parse and map timings (3)")
    parser.add_argument("--output", type=Path, default=RESULTS / "ingest.json")
    args = parser.parse_args(argv)
    if not FIXTURES.exists():
        print(f"the shared fixtures are not at {FIXTURES}; clone the project beside ../shared")
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "store") as uri:
        settings = Settings(mongodb_uri=uri, db_name="bench_ingest", data_dir=Path(tmp) / "hub")
        token = development_token(settings, role="system", facility=FACILITY)

        app = create_app(settings, on_startup=ready_to_measure)
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
            bulk = FIXTURES / "synthea-bulk-ndjson-10pt"
            for name in ("Organization", "Location", "Practitioner", "Patient"):  # what the encounters refer to
                client.post("/$ingest", content=(bulk / f"{name}.000.ndjson").read_bytes(),
                            headers={"Content-Type": "application/fhir+ndjson", "Accept": "application/fhir+json"})
            for item in inputs(args.episodes):
                source = Source(item["format"], FACILITY)
                mapping = item["adapter"].map(item["payload"], source, filename=item["file"])
                records = len(mapping.records)
                parse_rate = _rate(records, functools.partial(item["parse"], item["payload"]), args.rounds)
                map_rate = _rate(records, functools.partial(item["adapter"].map, item["payload"], source,
                                                            filename=item["file"]), args.rounds)
                started = time.perf_counter()
                answer = client.post("/$ingest", content=item["payload"], params={"filename": item["file"]},
                                     headers={"Content-Type": item["media"], "Accept": "application/fhir+json"})
                hub_seconds = time.perf_counter() - started
                if answer.status_code != 200:
                    raise SystemExit(f"$ingest refused {item['file']}: {answer.status_code} {answer.text[:300]}")
                values = {p["name"]: p.get("valueInteger") for p in answer.json()["parameter"]}
                row = {"format": item["format"], "file": item["file"], "bytes": len(item["payload"]),
                       "records": records, "accepted": values["recordsAccepted"],
                       "rejected": values["recordsRejected"], "created": values["created"],
                       "parse_records_per_s": round(parse_rate), "map_records_per_s": round(map_rate),
                       "hub_records_per_s": round(values["recordsAccepted"] / hub_seconds, 1),
                       "map_vs_parse": round(map_rate / parse_rate, 3),
                       "hub_vs_parse": round(values["recordsAccepted"] / hub_seconds / parse_rate, 4)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {**results_header(__doc__.splitlines()[0]), "inputs": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0
