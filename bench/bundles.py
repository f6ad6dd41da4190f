"""Bundle ingest throughput on the embedded store, beside the cost of parsing and validating the same Bundles.

- baseline: ``orjson.loads`` of each Bundle's bytes + ``Bundle.model_validate`` with the R4B models (every
  resource validated), the CPU floor of any server that checks what it stores;
- hub: the same Bundles POSTed to the running app (in process, through the whole ASGI stack: token,
  validation, reference resolution, conditional references, indexing, one server transaction per Bundle).

- store only: the documents the hub stored for those Bundles (resources and their index documents), read
  back and inserted again under new ids, one server transaction per Bundle, with no hub work at all: the
  most any hub could reach on this store, whatever it did or did not compute.

Reported: resources/s of each and their ratio (target 0.60), and the hub's absolute rate (target 1,000/s on
2 cores). The Synthea directory batches (hospitals, practitioners: ``ifNoneExist`` on every entry) are
loaded first and measured too; then the two patient transactions are sent ``--rounds`` times each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient
from pymongo import MongoClient

from bench import results_header
from fhir_hub.auth.dev_tokens import development_token
from fhir_hub.config import Settings
from fhir_hub.fhir.registry import model_class
from fhir_hub.main import create_app, ready_to_measure
from fhir_hub.store.embedded import EmbeddedStore
from fhir_hub.store.schema import RESOURCES, SEARCH_INDEX

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT.parent / "shared" / "fixtures" / "synthea-transaction-bundles-conditional"
RESULTS = ROOT / "bench" / "results"
DIRECTORIES = ("hospitalInformation1633536936158.json", "practitionerInformation1633536936158.json")
PATIENTS = ("Bob965_Keeling57_3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b.json",
            "Cecelia952_Romaguera67_f1731e33-dc55-4ee8-72d7-cece2e49bedd.json")
TARGETS = {"hub_vs_validation_only": 0.60, "resources_per_second": 1000}


def validation_rate(bodies: list[bytes], rounds: int) -> float:
    """Resources/s of orjson.loads + R4B Bundle validation alone, best of ``rounds``."""
    bundle_model = model_class("Bundle")
    count = sum(len(orjson.loads(b)["entry"]) for b in bodies)
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for body in bodies:
            bundle_model.model_validate(orjson.loads(body))
        best = max(best, count / (time.perf_counter() - started))
    return best


def process_cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far, from /proc; 0.0 where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_rate(client: TestClient, bodies: list[bytes]) -> tuple[float, list[str], list[list[str]]]:
    """Resources/s of POSTing each Bundle once; also every entry status (to prove the work was done) and,
    per Bundle, the resources it wrote (``Type/id``)."""
    count = 0
    seen: list[str] = []
    written: list[list[str]] = []
    started = time.perf_counter()
    for body in bodies:
        answer = client.post("/", content=body, headers={"Content-Type": "application/fhir+json",
                                                        "Prefer": "return=minimal"})
        if answer.status_code != 200:
            raise SystemExit(f"the hub refused a benchmark Bundle: {answer.status_code} {answer.text[:300]}")
        entries = answer.json()["entry"]
        count += len(entries)
        seen += [e["response"]["status"] for e in entries]
        written.append(["/".join(e["response"]["location"].split("/_history/")[0].split("/")[-2:]) for e in entries])
    return count / (time.perf_counter() - started), seen, written


def store_only_rate(client: MongoClient[dict[str, Any]], db_name: str, written: list[list[str]], label: str) -> float:
    """Resources/s of inserting again, one transaction per Bundle, the documents the hub stored for it."""
    db = client[db_name]
    groups = []
    for keys in written:
        resources = list(db[RESOURCES].find({"_id": {"$in": keys}}))
        entries = list(db[SEARCH_INDEX].find({"r": {"$in": keys}}))
        if len(resources) != len(keys):
            raise SystemExit(f"store-only replay: {len(keys) - len(resources)} written resources not found")
        groups.append(([doc | {"_id": f"{doc['_id']}~{label}", "r": f"{doc['r']}~{label}"} for doc in entries],
                       [doc | {"_id": f"{doc['_id']}~{label}"} for doc in resources]))
    started = time.perf_counter()
    for entries, resources in groups:
        with client.start_session() as session, session.start_transaction():
            db[SEARCH_INDEX].insert_many(entries, session=session)  # entries first, as the hub sends them
            db[RESOURCES].insert_many(resources, session=session)
    return sum(len(resources) for _, resources in groups) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench bundles", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="times each patient transaction is sent (5)")
    parser.add_argument("--output", type=Path, default=RESULTS / "bundles.json")
    args = parser.parse_args(argv)
    if not SYNTHEA.exists():
        print(f"the Synthea Bundles are not at {SYNTHEA}; clone the project beside ../shared")
        return 2
    directories = [(SYNTHEA / n).read_bytes() for n in DIRECTORIES]
    patients = [(SYNTHEA / n).read_bytes() for n in PATIENTS]
    result: dict[str, Any] = {
        **results_header("Synthea batch and transaction Bundles vs orjson.loads + R4B validation of the same Bundles"),
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory() as tmp, (store := EmbeddedStore(Path(tmp) / "store")) as uri:
        store_pid = store.pid
        settings = Settings(mongodb_uri=uri, db_name="bench_bundles", data_dir=Path(tmp) / "hub")
        token = development_token(settings, role="system", facility="79001")

        app = create_app(settings, on_startup=ready_to_measure)
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
            rate, seen, _ = post_rate(client, directories)
            result["directory_batches"] = {
                "resources": len(seen), "hub_per_s": round(rate),
                "validation_only_per_s": round(validation_rate(directories, 2)),
                "statuses": sorted(set(seen))}
            print(f"directory batches: {json.dumps(result['directory_batches'])}", flush=True)
            ratios, rates, baselines, ceilings, ceiling_ratios = [], [], [], [], []
            hub_cpu = store_cpu = 0.0
            direct: MongoClient[dict[str, Any]] = MongoClient(uri)
            for round_no in range(args.rounds):  # measured back to back in each round: the machine is noisy
                hub_before, store_before = time.process_time(), process_cpu_seconds(store_pid)
                rate, seen, written = post_rate(client, patients)
                hub_cpu += time.process_time() - hub_before
                store_cpu += process_cpu_seconds(store_pid) - store_before
                baseline = validation_rate(patients, 1)
                ceiling = store_only_rate(direct, settings.db_name, written, f"replay{round_no}")
                rates.append(rate)
                baselines.append(baseline)
                ratios.append(rate / baseline)
                ceilings.append(ceiling)
                ceiling_ratios.append(ceiling / baseline)
            direct.close()
            result["patient_transactions"] = {
                "resources_per_round": len(seen), "rounds": args.rounds,
                "hub_per_s_median": round(statistics.median(rates)),
                "validation_only_per_s_median": round(statistics.median(baselines)),
                "ratio_median": round(statistics.median(ratios), 3),
                # the same documents inserted with no hub work: the most any hub could reach on this store
                "store_only_per_s_median": round(statistics.median(ceilings)),
                "store_only_vs_validation_only_median": round(statistics.median(ceiling_ratios), 3),
                # where the time goes: CPU per resource of the hub process and of the embedded store
                "hub_cpu_ms_per_resource": round(1000 * hub_cpu / (len(seen) * args.rounds), 3),
                "store_cpu_ms_per_resource": round(1000 * store_cpu / (len(seen) * args.rounds), 3),
                "statuses": sorted(set(seen))}
            print(f"patient transactions: {json.dumps(result['patient_transactions'])}", flush=True)
    figures = result["patient_transactions"]
    result["targets_met"] = {"hub_vs_validation_only": figures["ratio_median"] >= TARGETS["hub_vs_validation_only"],
                             "resources_per_second": figures["hub_per_s_median"] >= TARGETS["resources_per_second"]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"targets met: {json.dumps(result['targets_met'])}; wrote {args.output}")
    return 0
