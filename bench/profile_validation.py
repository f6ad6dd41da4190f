"""What checking a resource against its city profile (``profiles.validation.profile``) costs, beside the base
checks and plain R4B model validation of the same resources, measured in one run.

The resources are what the adapters make of the test data and claim a profile for (MoH XML from the
generator, the HL7 v2 fixtures, the Synthea CSV), so each is one the write path checks against its profile.
Reported per profiled type and overall: microseconds per resource (mean, p95) and resources/s for the R4B
model, the base checks (``validate`` without the claim) and the profile check alone; and the write's whole
validation (structure + base + profile) per resource.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from adapters.base import Source
from adapters.csv import CsvAdapter
from adapters.hl7v2 import Hl7v2Adapter
from adapters.moh_xml import MohXmlAdapter
from adapters.moh_xml.generator import generate_file
from bench import results_header
from bench.bundles import RESULTS, SYNTHEA
from bench.validation import best_times, figures
from fhir_hub.fhir.registry import model_class
from fhir_hub.fhir.validation import check_structure
from profiles.validation import validate, write_errors
from profiles.validation.city import profile_for_type
from profiles.validation.profile import check_profile

HL7 = SYNTHEA.parent / "hl7v2" / "messages"


def claimed_resources() -> list[dict[str, Any]]:
    mappings = [MohXmlAdapter().map(generate_file(seed, episodes=20).payload, Source("moh-xml")) for seed in (1, 2)]
    mappings += [Hl7v2Adapter().map(p.read_bytes(), Source("hl7v2")) for p in sorted(HL7.glob("*.hl7"))]
    mappings += [CsvAdapter("synthea").map(p.read_bytes(), Source("csv"), filename=p.name)
                 for p in sorted(SYNTHEA.parent.joinpath("synthea-csv-27pt").glob("*.csv"))]
    found = []
    for mapping in mappings:
        for record in mapping.records:
            for entry in record.bundle["entry"]:
                resource = entry["resource"]
                p = profile_for_type(resource["resourceType"])
                if p is not None and p.url in resource.get("meta", {}).get("profile", []):
                    found.append(resource)
    return found


def _unclaimed(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in resource["meta"].items() if k != "profile"}
    return {**resource, "meta": meta}


def measure(resources: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    for resource in resources:
        if write_errors(resource):
            raise SystemExit(f"a claimed resource breaks its profile: {write_errors(resource)[:2]}")
    city = {p.type: p for p in (profile_for_type(r["resourceType"]) for r in resources) if p is not None}
    model = best_times(resources, lambda r: model_class(r["resourceType"]).model_validate(r), rounds)
    structure = best_times(resources, check_structure, rounds)
    bare = [_unclaimed(r) for r in resources]
    base = best_times(bare, validate, rounds)
    profile = best_times(resources, lambda r: check_profile(r, city[r["resourceType"]]), rounds)
    by_type: dict[str, list[float]] = defaultdict(list)
    for resource, spent in zip(resources, profile, strict=True):
        by_type[resource["resourceType"]].append(spent)
    return {
        "resources": len(resources),
        "r4b_model_validate": figures(model),
        "structural_pass": figures(structure),
        "base_bindings_and_invariants": figures(base),
        "city_profile": figures(profile),
        "profile_vs_model": round(statistics.fmean(profile) / statistics.fmean(model), 2),
        "write_validation_us_mean": round(statistics.fmean(structure) + statistics.fmean(base)
                                          + statistics.fmean(profile), 1),
        "city_profile_by_type_us": {t: {"resources": len(v), "us_mean": round(statistics.fmean(v), 1)}
                                    for t, v in sorted(by_type.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench profiles", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timings per resource, the best kept (5)")
    parser.add_argument("--output", type=Path, default=RESULTS / "profile-validation.json")
    args = parser.parse_args(argv)
    if not SYNTHEA.exists():
        print(f"the fixtures are not at {SYNTHEA.parent}; clone the project beside ../shared")
        return 2
    result: dict[str, Any] = results_header("City profile check per resource beside the base checks and R4B "
                                            "model validation of the adapters' claimed output")
    result["adapter_output_claiming_a_city_profile"] = measure(claimed_resources(), args.rounds)
    print(json.dumps(result["adapter_output_claiming_a_city_profile"]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0
