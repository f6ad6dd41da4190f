"""Search latency at scale, beside a full-collection scan of the same store in the same run.

The Synthea NDJSON (plus the Observations of the Synthea patient Bundles) is loaded several times over,
each copy with its ids, references and identifier values rewritten, until the store holds at least
``--resources`` resources. The load goes through the hub's normal write path (update-as-create), so its
rate includes validation and index maintenance.

Then, against the hub running as its own process (``fhir-hub serve``), each common search is timed over
HTTP with a different patient (or value) per request: patient by identifier, name and birthdate;
Observation by patient + code + date; Encounter by patient + date. The baseline is what a search would
cost without the index: one unindexed ``find`` over the ``resources`` collection, which the server answers
by scanning every document. The figure that matters is the ratio (machine noise cancels out), with the
issue's targets: every common search at least 20 times faster than the scan, and p95 under 50 ms for a
single-patient search.

Index maintenance per write is measured twice: over HTTP, creates and updates beside bare ``insert_one``;
and in process, the same writes through the writer with the store's derivers (the search index) and with
none, whose difference is the index's share of a write.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from pymongo import MongoClient
from tqdm import tqdm

from bench import results_header
from bench.rest import Hub, request, run_threads
from fhir_hub.auth.caller import Caller
from fhir_hub.config import Settings
from fhir_hub.hub import running_hub
from fhir_hub.search.indexing import index_keys
from fhir_hub.store.embedded import EmbeddedStore
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.schema import RESOURCES
from fhir_hub.store.writer import Update, Writer

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
RESULTS = ROOT / "bench" / "results"
DB_NAME = "bench_hub"
TARGETS = {"speedup_vs_scan": 20.0, "single_patient_p95_ms": 50.0}
LOADER = Caller.hub("bench")
_REFERENCE = re.compile(r'"reference":"([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"')


# ------------------------------------------------------------------------------------------ corpus
def corpus() -> list[dict[str, Any]]:
    """One copy of the real data: the Synthea NDJSON and the Observations of the Synthea patient Bundles."""
    found: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / "synthea-bulk-ndjson-10pt").glob("*.000.ndjson")):
        found += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for path in sorted((FIXTURES / "synthea-transaction-bundles-conditional").glob("*_*.json")):
        bundle = orjson.loads(path.read_bytes())
        by_url = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] in ("Patient", "Observation", "Encounter"):
                text = orjson.dumps(resource).decode()
                for url, key in by_url.items():  # the Bundle's urn:uuid references become Type/id
                    text = text.replace(f'"{url}"', f'"{key}"')
                found.append(orjson.loads(text))
    if not found:
        raise SystemExit(f"the Synthea fixtures are not under {FIXTURES} (clone the project beside ../shared)")
    return found


def copies(base: list[dict[str, Any]], suffixes: Iterable[str]) -> Iterator[dict[str, Any]]:
    """A copy of the corpus per suffix: its ids, the references to them and identifier values end in
    ``-suffix``, so copies never share a patient, an identifier or a reference."""
    ids = {f"{r['resourceType']}/{r['id']}" for r in base}
    order = {"Organization": 0, "Location": 1, "Practitioner": 2, "PractitionerRole": 3, "Patient": 4}
    ordered = sorted(base, key=lambda r: order.get(r["resourceType"], 9))  # referenced resources first
    texts = [orjson.dumps(r).decode() for r in ordered]
    for suffix in suffixes:
        def rename(match: re.Match[str], suffix: str = suffix) -> str:
            key = f"{match[1]}/{match[2]}"
            return f'"reference":"{key}-{suffix}"' if key in ids else match[0]

        for text in texts:
            resource = orjson.loads(_REFERENCE.sub(rename, text))
            resource["id"] = f"{resource['id']}-{suffix}"
            for identifier in resource.get("identifier") or []:
                if isinstance(identifier.get("value"), str):
                    identifier["value"] = f"{identifier['value']}-{suffix}"
            yield resource


def fresh_copy(base: list[dict[str, Any]], tag: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` resources of a new copy (for write measurements: they touch no measured patient)."""
    return list(itertools.islice(copies(base, [f"{tag}{uuid.uuid4().hex[:8]}"]), count))


async def load(settings: Settings, resources: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Store every resource through the hub's writer, ``concurrency`` writes at a time."""
    async with running_hub(settings) as hub:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for resource in resources:
            queue.put_nowait(resource)
        bar = tqdm(total=len(resources), desc="loading", unit="resource", mininterval=2)

        async def worker() -> None:
            while not queue.empty():
                resource = queue.get_nowait()
                await hub.writer.commit(Update(resource["resourceType"], resource["id"], resource), caller=LOADER)
                bar.update()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
        bar.close()
        documents = await hub.store.index.estimated_document_count()  # entries are packed several to one
    return {"resources": len(resources), "seconds": round(seconds, 1),
            "resources_per_second": round(len(resources) / seconds, 1), "index_documents": documents,
            "index_documents_per_resource": round(documents / len(resources), 1)}


# ------------------------------------------------------------------------------------- measurement
def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(run: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds of each call (after two warm-up calls)."""
    run()
    run()
    found = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        found.append((time.perf_counter() - start) * 1000)
    return found


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 0.5), 2), "p95_ms": round(percentile(samples, 0.95), 2),
            "mean_ms": round(statistics.fmean(samples), 2), "n": len(samples)}


def searches(resources: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The common searches, each as a list of query URLs over different patients (from the loaded data)."""
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    observations = [r for r in resources if r["resourceType"] == "Observation" and r.get("effectiveDateTime")]
    encounters = [r for r in resources if r["resourceType"] == "Encounter" and (r.get("period") or {}).get("start")]

    def url(rtype: str, **params: str) -> str:
        return f"/{rtype}?{urlencode(params)}"

    def identifier(p: dict[str, Any]) -> str:
        first = p["identifier"][0]
        return f"{first.get('system', '')}|{first['value']}"

    return {
        "patient by identifier": [url("Patient", identifier=identifier(p)) for p in patients],
        "patient by name": [url("Patient", name=p["name"][0]["family"][:5]) for p in patients],
        "patient by birthdate": [url("Patient", birthdate=p["birthDate"]) for p in patients],
        "observation by patient+code+date": [
            url("Observation", subject=o["subject"]["reference"], code=o["code"]["coding"][0]["code"],
                date="ge" + o["effectiveDateTime"][:7]) for o in observations],
        "encounter by patient+date": [
            url("Encounter", patient=e["subject"]["reference"], date="ge" + e["period"]["start"][:4])
            for e in encounters],
    }


def measure_searches(hub: Hub, queries: dict[str, list[str]], repeat: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    conn = hub.connection()
    results: dict[str, Any] = {}
    for name, urls in queries.items():
        picks = [rng.choice(urls) for _ in range(repeat + 2)]
        sizes: list[int] = []

        def run(picks: list[str] = picks, sizes: list[int] = sizes) -> None:
            body = orjson.loads(request(conn, "GET", picks[len(sizes) % len(picks)]))
            sizes.append(body["total"])

        results[name] = {**summary(timed(run, repeat)), "mean_matches": round(statistics.fmean(sizes), 1)}
    conn.close()
    return results


def measure_scan(uri: str, repeat: int) -> dict[str, Any]:
    """The baseline: one query that must read every stored resource (no index can serve it)."""
    client: MongoClient = MongoClient(uri)
    collection = client[DB_NAME][RESOURCES]
    count = collection.estimated_document_count()
    samples = timed(lambda: list(collection.find({"src": "urn:nobody"})), repeat)
    client.close()
    return {**summary(samples), "documents": count}


def measure_index_maintenance(uri: str, hub: Hub, base: list[dict[str, Any]], concurrency: int
                              ) -> dict[str, Any]:
    """What index upkeep costs a write: creates (every entry inserted) and updates (the changed entries
    replaced) over HTTP, beside a bare ``insert_one`` of the same documents, and the CPU time of computing
    a resource's entries."""
    sample = fresh_copy(base, "w", 1000)
    client: MongoClient = MongoClient(uri)
    raw = client["bench_raw"]["resources"]
    raw.delete_many({})
    docs = [{"_id": f"{r['resourceType']}/{r['id']}", "json": orjson.dumps(r)} for r in sample]
    insert_rate = run_threads(docs, lambda s, d: raw.insert_one(d), concurrency, lambda: None)
    client.close()
    creates = [(f"/{r['resourceType']}/{r['id']}", orjson.dumps(r)) for r in sample]
    create_rate = run_threads(creates, lambda c, u: request(c, "PUT", u[0], u[1]), concurrency, hub.connection)
    tagged = [dict(r, meta={"tag": [{"system": "urn:bench", "code": "updated"}]}) for r in sample]  # one entry more
    updates = [(f"/{r['resourceType']}/{r['id']}", orjson.dumps(r)) for r in tagged]
    update_rate = run_threads(updates, lambda c, u: request(c, "PUT", u[0], u[1]), concurrency, hub.connection)
    start = time.perf_counter()
    entries = sum(len(index_keys(r["resourceType"], r)) for r in sample)
    extract_us = (time.perf_counter() - start) / len(sample) * 1e6
    return {"writes": len(sample), "concurrency": concurrency, "insert_one_per_second": round(insert_rate, 1),
            "http_create_per_second": round(create_rate, 1), "http_update_per_second": round(update_rate, 1),
            "create_vs_insert_one": round(create_rate / insert_rate, 3),
            "update_vs_insert_one": round(update_rate / insert_rate, 3),
            "index_entries_per_resource": round(entries / len(sample), 1),
            "entry_extraction_us_per_resource": round(extract_us, 1)}


async def writer_cost(settings: Settings, base: list[dict[str, Any]], count: int = 300, rounds: int = 3
                      ) -> dict[str, Any]:
    """Milliseconds per write through the writer in process, one at a time: with the search index and with a
    store that derives nothing, over the same resources (new ids each time), in alternating rounds after
    a warm-up (the first write of each type pays for loading its model). The difference of the medians is
    what keeping the index costs a write."""
    times: dict[str, list[float]] = {"without_index": [], "with_index": []}
    async with running_hub(settings) as hub:
        unindexed = MongoStore(hub.store.client, settings.db_name, hub.store.capabilities, derivers=())
        writers = {name: Writer(store, clock=hub.writer.clock, new_id=hub.writer.new_id,
                                source_prefix=settings.source_prefix)
                   for name, store in (("without_index", unindexed), ("with_index", hub.store))}
        for round_no in range(rounds + 1):  # round 0 warms up and is dropped
            for name, writer in writers.items():
                sample = fresh_copy(base, "x", count)
                start = time.perf_counter()
                for r in sample:
                    await writer.commit(Update(r["resourceType"], r["id"], r), caller=LOADER)
                if round_no:
                    times[name].append((time.perf_counter() - start) / len(sample) * 1000)
    without, with_index = statistics.median(times["without_index"]), statistics.median(times["with_index"])
    return {"writes": count * rounds, "ms_per_write_without_index": round(without, 2),
            "ms_per_write_with_index": round(with_index, 2), "index_ms_per_write": round(with_index - without, 2),
            "index_share_of_write": round(1 - without / with_index, 3),
            "rounds": {k: [round(x, 2) for x in v] for k, v in times.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench search", description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000, help="at least this many resources (100000)")
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per search (200)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent writes while loading (8)")
    parser.add_argument("--store-dir", type=Path, default=None,
                        help="keep the embedded store here and reuse it on the next run (default: a temporary one)")
    parser.add_argument("--output", type=Path, default=RESULTS / "search.json")
    args = parser.parse_args(argv)

    base = corpus()
    count = -(-args.resources // len(base))
    resources = list(copies(base, (str(k) for k in range(count))))
    result: dict[str, Any] = {
        **results_header("common searches vs a full-collection scan"),
        "targets": TARGETS,
        "corpus": {"resources_per_copy": len(base), "copies": count},
    }
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = args.store_dir or Path(tmp) / "store"
        with EmbeddedStore(store_dir) as uri:
            settings = Settings(mongodb_uri=uri, db_name=DB_NAME, data_dir=Path(tmp) / "hub")
            stored = MongoClient(uri)[DB_NAME][RESOURCES].estimated_document_count()
            if stored >= len(resources):
                result["load"] = {"reused": str(store_dir), "resources": stored}
            else:
                result["load"] = asyncio.run(load(settings, resources, args.concurrency))
            print(f"load: {json.dumps(result['load'])}", flush=True)
            hub = Hub(uri, Path(tmp) / "hub")
            try:
                result["scan"] = measure_scan(uri, max(10, args.repeat // 10))
                print(f"full scan: {json.dumps(result['scan'])}", flush=True)
                result["searches"] = measure_searches(hub, searches(resources), args.repeat, seed=7)
                scan_p50 = result["scan"]["p50_ms"]
                for name, figures in result["searches"].items():
                    figures["speedup_vs_scan_p50"] = round(scan_p50 / figures["p50_ms"], 1)
                    print(f"{name}: {json.dumps(figures)}", flush=True)
                result["index_maintenance"] = measure_index_maintenance(uri, hub, base, 4)
                print(f"index maintenance over HTTP: {json.dumps(result['index_maintenance'])}", flush=True)
                result["index_cost_per_write"] = asyncio.run(writer_cost(settings, base))
                print(f"index cost per write (in process): {json.dumps(result['index_cost_per_write'])}", flush=True)
            finally:
                hub.stop()
    speedups = [f["speedup_vs_scan_p50"] for f in result["searches"].values()]
    single = [f["p95_ms"] for name, f in result["searches"].items() if "patient" in name]
    result["targets_met"] = {"speedup_vs_scan": min(speedups) >= TARGETS["speedup_vs_scan"],
                             "single_patient_p95_ms": max(single) <= TARGETS["single_patient_p95_ms"]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"targets met: {json.dumps(result['targets_met'])}; wrote {args.output}")
    return 0
