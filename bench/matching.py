"""Patient matching on a synthetic Ho Chi Minh City population (issue 16): accuracy and cost as it grows.

- The model at every size is the one a hub holding those records would have (``hub_engine``): name
  frequencies, whole names included, counted from the records (``Model.refit``) and thresholds raised by
  log2 of their number over the 28,564 records they were tuned on (``Model.for_records``: +3.3 bits at
  100,000 people).
- Accuracy at 10,000 and 100,000 people (2-4 noisy records each; ``--accuracy`` to choose): the pairwise
  and cluster confusion counts of ``tests/matching/evaluate.py`` at the upper threshold (automatic links)
  and at the lower one (review decisions counted as links: what lowering the upper threshold would give),
  the review-list share, CCCD-bearing records correct, candidates per record, the kinds of hard negative
  the false links fell for (``false_link_kinds``), and the first wrong decisions with their records.
  Targets: precision >= 0.999, recall >= 0.95, review <= 2%, CCCD 100%.
- Cost per incoming record at 1,000, 10,000 and 100,000 people: every record is indexed by its block
  keys, then 1,000 of them arrive again and are matched (block keys, look-up, compare with each candidate
  but itself). The fastest of 5 rounds, in microseconds (the least disturbed on a shared machine; one
  round is only 1,000 records); target: the largest population costs at most 1.5 times the smallest,
  i.e. blocking keeps the candidates per record flat as the population grows. The compare cost per
  candidate is reported too: it grows with the index even at a flat candidate count (memory, not work).
- Write cost (``--writes``): Patients created through the hub's writer on the embedded store, alternately
  in the same run: the search index alone (the hub before matching), every deriver with the match step
  off, and the hub as it runs (matched, linked to a master, the master rebuilt): what matching costs each
  Patient write.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from bench import results_header
from tests.matching.evaluate import Index, describe, engine, evaluate, false_link_kinds, hub_engine, hub_model
from tests.matching.population import generate

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"precision": 0.999, "recall": 0.95, "review_share": 0.02, "cccd_correct": 1.0, "cost_ratio": 1.5}


def accuracy(people: int, seed: int, examples: int) -> dict[str, Any]:
    start = time.perf_counter()
    population = generate(people, seed)
    generated = time.perf_counter() - start
    result = evaluate(population.records, hub_engine(), examples=10 ** 9)  # every false link, to tell their kinds
    summary = result.summary()
    summary["seconds"]["generate"] = round(generated, 3)
    summary["meets_targets"] = {
        "precision": result.link.precision >= TARGETS["precision"],
        "recall": result.link.recall >= TARGETS["recall"],
        "review_share": result.review_share <= TARGETS["review_share"],
        "cccd_correct": result.cccd_correct >= TARGETS["cccd_correct"],
    }
    summary["false_link_kinds"] = false_link_kinds(result.false_links, {p.pid: p for p in population.people})
    summary["false_links"] = [describe(p) for p in result.false_links[:examples]]
    summary["missed_links"] = [describe(p) for p in result.missed_links[:examples]]
    return summary


def cost(people: int, seed: int, incoming: int, rounds: int) -> dict[str, Any]:
    """Microseconds to match one incoming record against the records of ``people`` people."""
    matcher = engine()
    records = generate(people, seed).records
    features = [matcher.features(r.patient, r.key) for r in records]
    matcher = engine(hub_model(features))
    index = Index()
    for position, record in enumerate(features):
        index.add(position, matcher.block_keys(record))
    sample = random.Random(seed).sample(range(len(features)), min(incoming, len(features)))
    blocking: list[float] = []
    comparing: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        found = [(i, index.candidates(matcher.block_keys(features[i])) - {i}) for i in sample]
        t1 = time.perf_counter()
        for i, candidates in found:
            for j in candidates:
                matcher.compare(features[j], features[i])
        blocking.append((t1 - t0) / len(sample))
        comparing.append((time.perf_counter() - t1) / len(sample))
    t0 = time.perf_counter()
    for i in sample:
        matcher.features(records[i].patient, records[i].key)
    extract = (time.perf_counter() - t0) / len(sample)
    block, compare = min(blocking), min(comparing)
    per_incoming = sum(len(c) for _, c in found) / len(sample)
    return {
        "people": people, "records": len(records), "incoming": len(sample), "rounds": rounds,
        "candidates_per_incoming": round(per_incoming, 2),
        "largest_block": index.largest(),
        "micros_per_record": {"blocking": round(block * 1e6, 1), "compare": round(compare * 1e6, 1),
                              "blocking_and_compare": round((block + compare) * 1e6, 1),
                              "features": round(extract * 1e6, 1),
                              "compare_per_candidate": round(compare * 1e6 / per_incoming, 2) if per_incoming else 0.0},
    }


def writes(count: int, seed: int, rounds: int) -> dict[str, Any]:
    """Patients per second through ``Writer.commit``, each round a fresh database, both derivers' sets
    alternately; the median per set."""
    import asyncio
    import statistics
    import tempfile

    from fhir_hub.auth.caller import Caller
    from fhir_hub.auth.scopes import Scopes
    from fhir_hub.config import Settings
    from fhir_hub.hub import running_hub
    from fhir_hub.store.derivers import DERIVERS, Deriver, SearchIndex
    from fhir_hub.store.embedded import EmbeddedStore
    from fhir_hub.store.writer import Create

    hospital = Caller(subject="bench", scopes=Scopes.parse("system/*.cruds"), facility="79001")
    patients = [r.patient for r in generate(count, seed).records][:count]

    async def rate(uri: str, derivers: tuple[Deriver, ...], link: bool, data_dir: Path) -> float:
        settings = Settings(mongodb_uri=uri, db_name=f"bench_writes_{random.randrange(10 ** 9)}", data_dir=data_dir,
                            validation_processes=0, ingest_processes=0, link_patients=link)
        async with running_hub(settings, derivers=derivers) as hub:
            start = time.perf_counter()
            for patient in patients:
                await hub.writer.commit(Create("Patient", patient), caller=hospital)
            return len(patients) / (time.perf_counter() - start)

    sets: dict[str, tuple[tuple[Deriver, ...], bool]] = {
        "search_index_only": ((SearchIndex(),), False),  # the hub before issue 16
        "with_match_blocks": (DERIVERS, False),  # every deriver, the match step off (FHIR_HUB_LINK_PATIENTS=false)
        "with_linking": (DERIVERS, True),  # the hub as it runs: matched, linked, masters rebuilt
    }
    found: dict[str, list[float]] = {name: [] for name in sets}
    with tempfile.TemporaryDirectory() as folder, EmbeddedStore(Path(folder) / "store") as uri:
        for _round in range(rounds):
            for name, (derivers, link) in sets.items():
                found[name].append(asyncio.run(rate(uri, derivers, link, Path(folder) / "hub")))
    medians = {name: round(statistics.median(rates), 1) for name, rates in found.items()}
    return {"patients": len(patients), "rounds": rounds, "patients_per_second": medians,
            "all_rounds": {name: [round(r, 1) for r in rates] for name, rates in found.items()},
            "ratio": round(medians["with_match_blocks"] / medians["search_index_only"], 3),
            "linking_ratio": round(medians["with_linking"] / medians["search_index_only"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench matching", description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", type=int, nargs="*", default=[10_000, 100_000],
                        help="people per accuracy run (10000 100000)")
    parser.add_argument("--cost", type=int, nargs="*", default=[1_000, 10_000, 100_000],
                        help="people per cost run (the first is the base of the ratio)")
    parser.add_argument("--incoming", type=int, default=1000, help="records matched per cost round (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="cost rounds, the fastest is kept (5)")
    parser.add_argument("--examples", type=int, default=10, help="wrong decisions listed per kind (10)")
    parser.add_argument("--writes", type=int, default=1000, help="Patients per write-cost round (1000; 0: skip)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--output", type=Path, default=RESULTS / "matching.json")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        **results_header("patient matching on a synthetic HCMC population"),
        "targets": TARGETS,
        "seed": args.seed,
        "accuracy": [],
        "cost": [],
    }
    for people in args.accuracy:
        run = accuracy(people, args.seed, args.examples)
        result["accuracy"].append(run)
        shown = {k: v for k, v in run.items() if k not in ("false_links", "missed_links")}
        print(f"accuracy {people}: {json.dumps(shown)}", flush=True)
        for kind in ("false_links", "missed_links"):
            print(f"{kind}:\n" + "\n".join(run[kind]), flush=True)
    for people in args.cost:
        run = cost(people, args.seed, args.incoming, args.rounds)
        result["cost"].append(run)
        print(f"cost {people}: {json.dumps(run)}", flush=True)
    if len(result["cost"]) > 1:
        base = result["cost"][0]["micros_per_record"]["blocking_and_compare"]
        ratios = {f"{run['people']}/{result['cost'][0]['people']}":
                  round(run["micros_per_record"]["blocking_and_compare"] / base, 2) for run in result["cost"][1:]}
        result["cost_ratios"] = ratios
        result["cost_meets_target"] = max(ratios.values()) <= TARGETS["cost_ratio"]
        print(f"cost ratios: {json.dumps(ratios)}")
    if args.writes:
        result["writes"] = writes(args.writes, args.seed, 3)
        print(f"writes: {json.dumps(result['writes'])}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0  # like the other benches: the figures and their targets are in the results, not the exit code
