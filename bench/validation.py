"""What the base checks (required bindings + invariants, ``profiles.validation``) cost per resource, beside
plain R4B model validation of the same resources, measured in one run.

Two sets: the entries of the two Synthea patient transactions (what a write-heavy day looks like: Encounters,
Observations, Claims...) and the HL7 R4 examples the hub accepts (one or a few of each type, the broad
case). For each resource, best of ``--rounds``: ``model_validate`` of its R4B model; the hub's whole
structural pass (the model and the JSON-shape walk, ``check_structure``); the base checks alone. Reported:
microseconds per resource (mean and p95), resources/s, the base checks' cost as a share of the model's, and
the types where the base checks cost most. Every resource must pass (a failure here is a bug, not a figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import results_header
from bench.bundles import PATIENTS, RESULTS, SYNTHEA
from fhir_hub.fhir.registry import is_resource_type, model_class
from fhir_hub.fhir.validation import check_structure
from profiles.validation import validate

HL7_EXAMPLES = SYNTHEA.parent / "ms-fhir-server-testfiles" / "R4"


def synthea_resources() -> list[dict[str, Any]]:
    return [e["resource"] for name in PATIENTS for e in orjson.loads((SYNTHEA / name).read_bytes())["entry"]]


def hl7_examples() -> list[dict[str, Any]]:
    found = []
    for path in sorted(HL7_EXAMPLES.glob("*-example*.json")):
        resource = orjson.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
        if not is_resource_type(resource.get("resourceType", "")):
            continue
        try:
            model_class(resource["resourceType"]).model_validate(resource)
        except ValueError:
            continue
        found.append(resource)
    return found


def best_times(resources: list[dict[str, Any]], check: Callable[[dict[str, Any]], Any], rounds: int) -> list[float]:
    """Per resource, the best of ``rounds`` timings in microseconds (the machine is shared and noisy)."""
    best = [float("inf")] * len(resources)
    for _ in range(rounds):
        for i, resource in enumerate(resources):
            started = time.perf_counter()
            check(resource)
            best[i] = min(best[i], (time.perf_counter() - started) * 1e6)
    return best


def figures(times: list[float]) -> dict[str, float]:
    mean = statistics.fmean(times)
    return {"us_mean": round(mean, 1), "us_p95": round(sorted(times)[int(0.95 * (len(times) - 1))], 1),
            "per_s": round(1e6 / mean)}


def measure(resources: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    for resource in resources:
        errors = [i.message for i in validate(resource) if i.is_error]
        if errors:
            raise SystemExit(f"a benchmark resource fails the base checks: {errors[:3]}")
    validate(resources[0])  # definitions loaded and expressions compiled before anything is timed
    model = best_times(resources, lambda r: model_class(r["resourceType"]).model_validate(r), rounds)
    structure = best_times(resources, check_structure, rounds)
    base = best_times(resources, validate, rounds)
    by_type: dict[str, list[float]] = defaultdict(list)
    for resource, spent in zip(resources, base, strict=True):
        by_type[resource["resourceType"]].append(spent)
    costly = sorted(((t, statistics.fmean(v)) for t, v in by_type.items()), key=lambda tv: -tv[1])[:5]
    return {
        "resources": len(resources), "types": len(by_type),
        "r4b_model_validate": figures(model),
        "structural_pass": figures(structure),
        "base_bindings_and_invariants": figures(base),
        "base_vs_model": round(statistics.fmean(base) / statistics.fmean(model), 2),
        "write_validation_us_mean": round(statistics.fmean(structure) + statistics.fmean(base), 1),
        "costliest_types_us": {t: round(v, 1) for t, v in costly},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench validation", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timings per resource, the best kept (5)")
    parser.add_argument("--output", type=Path, default=RESULTS / "validation.json")
    args = parser.parse_args(argv)
    if not SYNTHEA.exists():
        print(f"the fixtures are not at {SYNTHEA.parent}; clone the project beside ../shared")
        return 2
    result: dict[str, Any] = results_header("Base R4 checks (required bindings + invariants) per resource vs R4B "
                                            "model validation of the same resources")
    for name, resources in (("synthea_patient_transactions", synthea_resources()), ("hl7_examples", hl7_examples())):
        result[name] = measure(resources, args.rounds)
        print(f"{name}: {json.dumps(result[name])}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0
