"""``Patient/$match`` latency at 10,000 and 100,000 people on the embedded store (issue 16: p95 < 100 ms at
100,000), with the ratio between the two sizes.

**The store.** The synthetic population of ``tests/matching/population.py`` (2-4 facility records per person:
~28,500 Patients at 10,000 people, ~285,000 at 100,000), stored as the hub stores it: each facility record
with the hub's link to its master and the decision, one master (golden record) per person, and every
derived document (search index, match blocks, patient links). Through ``Writer.commit`` that takes hours
here (measured ~21 Patients/s with linking against ~130 without, at 2,000 records), so the store is loaded
by a **fast path** built from the hub's own parts: the link decisions are made in process in arrival order
with the engine the write path uses (``features``, ``block_keys``, ``compare`` with the writer's model;
each record joins the person of its best-scoring link, persons it links are merged unless their personal IDs
differ, as ``linking/linker.py`` decides), the content is the linker's (``with_master``, ``Decision``,
``golden_record``), and each version is stamped, derived and planned by the writer's own pipeline
(``pipeline.stamp``, ``pipeline.derive`` with the registered derivers, ``plan_write``) and its documents
bulk-inserted. Differences from a store filled one write at a time, none of which a ``$match`` reads: each
master is stored once (version 1, no history of rebuilds); persons merged by a later record are one master
from the start instead of a master redirected into another; records are not validated (the population is
valid R4). ``--check N`` loads N people both ways and compares the grouping (which records are one person)
and the documents each collection holds per record.

**The measurement.** Queries are fresh noisy copies of randomly drawn people (``copy_of``: what another
facility would send), timed two ways in the same run: **service**, in process through
``fhir_hub.services.match`` (parsing the Parameters, matching, the reader's decisions, rendering the
searchset Bundle: everything but HTTP), and **http**, ``POST /Patient/$match`` through the app in process
(``TestClient``: routing, token check, audit, JSON). ``hit_rate``: the share of queries whose first entry is
the master holding the drawn person's records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import results_header
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.policy import source_uri
from fhir_hub.auth.scopes import Scopes
from fhir_hub.config import Settings
from fhir_hub.hub import Hub, running_hub
from fhir_hub.linking.elements import MASTER_ID_PREFIX, Decision, with_master
from fhir_hub.linking.golden import SourceRecord, golden_record
from fhir_hub.linking.linker import MATCHER
from fhir_hub.matching import MatchRecord, Model, block_keys, compare, features
from fhir_hub.services.match import match, match_request
from fhir_hub.services.session import Session
from fhir_hub.store.embedded import EmbeddedStore
from fhir_hub.store.plan import plan_write
from fhir_hub.store.writer import Update
from tests.matching.noise import copy_of
from tests.matching.population import Population, Record, generate

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P95_MS = 100.0
_BATCH = 2_000  # documents per insert_many (the store's measured sweet spot is batches of about 1,000)
_LOADED = "bench_loaded"  # a marker collection: a kept store is not loaded twice


@dataclass
class People:
    """Union-find over record positions, each person's personal IDs (two different ones never merge)."""

    parent: list[int] = field(default_factory=list)
    cccds: dict[int, set[str]] = field(default_factory=dict)

    def add(self, cccd: str | None) -> int:
        self.parent.append(len(self.parent))
        self.cccds[len(self.parent) - 1] = {cccd} if cccd else set()
        return len(self.parent) - 1

    def root(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, into: int, other: int) -> None:
        self.parent[other] = into
        self.cccds[into] |= self.cccds.pop(other)


def decide(records: list[Record], model: Model) -> tuple[list[int], list[Decision]]:
    """Each record's person (a root position) and the decision that put it there, in arrival order."""
    people = People()
    index: dict[str, list[int]] = {}
    feats: list[MatchRecord] = []
    decisions: list[Decision] = []
    for position, record in enumerate(records):
        mine = features(record.patient, record.key)
        keys = block_keys(mine)
        candidates = sorted({c for k in keys for c in index.get(k, ())})
        linked = [(compare(mine, feats[c], model), c) for c in candidates]
        linked = [(cmp, c) for cmp, c in linked if cmp.decision == "link"]
        me = people.add(mine.cccd)
        if linked:
            best_cmp, best = max(linked, key=lambda pair: (pair[0].score, records[pair[1]].key))
            target = people.root(best)
            seen = set(people.cccds[target])
            for other in sorted({people.root(c) for _cmp, c in linked} - {target}):
                ids = people.cccds[other]
                if seen and ids and not ids <= seen:
                    continue  # two personal IDs: never merged automatically
                seen |= ids
                people.join(target, other)
            people.join(target, me)
            decisions.append(Decision(best_cmp.rule, best_cmp.score, best_cmp.grade, matched=records[best].key))
        else:
            decisions.append(Decision("new-person"))
        feats.append(mine)
        for key in keys:
            index.setdefault(key, []).append(position)
    return [people.root(p) for p in range(len(records))], decisions


async def load_fast(hub: Hub, population: Population) -> int:
    """The population as the hub would store it, through the writer's pipeline and plan, bulk-inserted,
    person by person (a person's records in arrival order, then its master). Returns the number of masters."""
    records = population.records
    model = hub.writer.linker.model if hub.writer.linker is not None else Model.default()
    roots, decisions = decide(records, model)
    masters = {root: f"{MASTER_ID_PREFIX}{n:07d}" for n, root in enumerate(sorted(set(roots)))}
    pipeline, prefix = hub.writer.pipeline, hub.writer.source_prefix
    pending: dict[str, list[dict[str, Any]]] = {}
    in_flight: list[asyncio.Task[Any]] = []

    async def send(collection: str, docs: list[dict[str, Any]]) -> None:
        """One insert under way while the next documents are computed (the server works meanwhile: measured,
        two thirds of a load is the server's)."""
        if in_flight:
            await in_flight.pop()
        in_flight.append(asyncio.create_task(hub.store.db[collection].insert_many(docs, ordered=False)))
        await asyncio.sleep(0)  # let it reach the server before this task computes again
    ts = int(time.time() * 1e6)
    persons: dict[int, list[int]] = {}
    for position, root in enumerate(roots):
        persons.setdefault(root, []).append(position)

    async def store(rid: str, content: dict[str, Any], source: str | None) -> dict[str, Any]:
        nonlocal ts
        ts += 1
        stamped = pipeline.stamp("Patient", rid, content, vid=1, ts=ts, method="PUT", source=source)
        for step in plan_write(pipeline.derive(stamped, None, fresh=True), f"bench{ts}").commit:
            pending.setdefault(step.collection, []).append(step.first)
            if len(pending[step.collection]) >= _BATCH:
                await send(step.collection, pending.pop(step.collection))
        assert stamped.resource is not None
        return stamped.resource

    for root, positions in persons.items():
        master, sources = masters[root], []
        for position in positions:
            record = records[position]
            facility = Caller(subject="bench", scopes=Scopes.parse("system/*.cruds"), facility=record.facility)
            content = with_master(record.patient, f"Patient/{master}", decisions[position])
            stored = await store(record.key.removeprefix("Patient/"), content, source_uri(facility, prefix))
            sources.append(SourceRecord(record.key, stored, ts))
        await store(master, golden_record(master, sources), source_uri(MATCHER, prefix))
    for collection, docs in pending.items():
        await send(collection, docs)
    if in_flight:
        await in_flight.pop()
    return len(masters)


async def load_writer(hub: Hub, population: Population, concurrency: int = 4) -> None:
    """The same population one ``Writer.commit`` at a time (several at once), for ``--check``."""
    queue = list(reversed(population.records))

    async def worker() -> None:
        while queue:
            record = queue.pop()
            caller = Caller(subject="bench", scopes=Scopes.parse("system/*.cruds"), facility=record.facility)
            await hub.writer.commit(Update("Patient", record.patient["id"], record.patient), caller=caller)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def grouping(hub: Hub) -> tuple[set[frozenset[str]], dict[str, int]]:
    """Which source records are one person (from the patient links), and documents per collection."""
    persons: dict[str, set[str]] = {}
    async for doc in hub.store.db["patient_links"].find({"k": "source"}):
        persons.setdefault(await hub.store.master_in_use(doc["_id"]) or doc["m"], set()).add(doc["_id"])
    counts = {name: await hub.store.db[name].count_documents({})
              for name in sorted(await hub.store.db.list_collection_names()) if not name.startswith(("audit", _LOADED))}
    return {frozenset(s) for s in persons.values()}, counts


def _settings(uri: str, folder: Path, db_name: str) -> Settings:
    return Settings(mongodb_uri=uri, db_name=db_name, data_dir=folder, validation_processes=0, ingest_processes=0)


async def check(uri: str, folder: Path, people: int, seed: int) -> dict[str, Any]:
    population = generate(people, seed)
    found: dict[str, dict[str, Any]] = {}
    for how in ("writer", "fast"):
        async with running_hub(_settings(uri, folder, f"bench_match_check_{how}_{random.randrange(10 ** 9)}")) as hub:
            start = time.perf_counter()
            await (load_writer(hub, population) if how == "writer" else load_fast(hub, population))
            seconds = time.perf_counter() - start
            persons, counts = await grouping(hub)
            found[how] = {"seconds": round(seconds, 1), "persons": persons, "documents": counts}
    writer, fast = found["writer"], found["fast"]
    return {"people": people, "records": len(population.records),
            "seconds": {"writer": writer["seconds"], "fast": fast["seconds"]},
            "persons": {"writer": len(writer["persons"]), "fast": len(fast["persons"]),
                        "same_grouping": len(writer["persons"] & fast["persons"])},
            "documents": {"writer": writer["documents"], "fast": fast["documents"]}}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(millis: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(millis), 2), "p95": round(_percentile(millis, 0.95), 2),
            "max": round(max(millis), 2), "mean": round(statistics.fmean(millis), 2)}


def _queries(population: Population, count: int, seed: int) -> list[tuple[int, dict[str, Any]]]:
    rng = random.Random(seed + 1)
    asked = []
    for person in (rng.choice(population.people) for _ in range(count)):
        patient = {k: v for k, v in copy_of(person, rng).items() if v != []}  # no identifier: no empty array
        asked.append((person.pid, {"resourceType": "Parameters", "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient", **patient}}]}))
    return asked


def measure(uri: str, folder: Path, people: int, seed: int, queries: int) -> dict[str, Any]:
    population = generate(people, seed)
    db_name = f"bench_match_{people}_{seed}"
    settings = _settings(uri, folder, db_name)
    caller = Caller(subject="bench", scopes=Scopes.parse("system/Patient.rs"), facility="79001")
    asked = _queries(population, queries, seed)

    async def service() -> dict[str, Any]:
        async with running_hub(settings) as hub:
            loaded = await hub.store.db[_LOADED].find_one({"_id": "population"})
            load_seconds = None
            if loaded is None:
                start = time.perf_counter()
                masters = await load_fast(hub, population)
                load_seconds = round(time.perf_counter() - start, 1)
                await hub.store.db[_LOADED].insert_one({"_id": "population", "masters": masters})
            else:
                masters = loaded["masters"]
            owner = {}
            async for doc in hub.store.db["patient_links"].find({"k": "source"}):
                owner[doc["_id"]] = doc["m"]
            person_of = {r.key: r.person for r in population.records}
            holds: dict[str, set[int]] = {}
            for key, master in owner.items():
                holds.setdefault(master, set()).add(person_of[key])
            from fhir_hub.api.match import searchset_json

            millis, hits, entries = [], 0, 0
            for pid, body in asked:
                start = time.perf_counter()
                session = Session.open(hub, caller)
                found = await match(session, match_request(body, max_count=1000))
                searchset_json(session.base_url, found)
                millis.append((time.perf_counter() - start) * 1000)
                entries += len(found.matches)
                hits += bool(found.matches) and pid in holds.get(found.matches[0].version.key, set())
            return {"load_seconds": load_seconds, "masters": masters, "service_ms": _summary(millis),
                    "entries_per_query": round(entries / len(asked), 2), "hit_rate": round(hits / len(asked), 4)}

    result: dict[str, Any] = {"people": people, "records": len(population.records), "queries": queries,
                              **asyncio.run(service())}
    result["http_ms"] = _summary(_over_http(settings, asked))
    return result


def _over_http(settings: Settings, asked: Iterable[tuple[int, dict[str, Any]]]) -> list[float]:
    from fastapi.testclient import TestClient

    from fhir_hub.auth.dev_tokens import development_token
    from fhir_hub.main import create_app

    token = development_token(settings, role="system", facility="79001", scope="system/Patient.rs")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    millis = []
    with TestClient(create_app(settings)) as client:
        for _pid, body in asked:
            start = time.perf_counter()
            response = client.post("/Patient/$match", json=body, headers=headers)
            millis.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text
    return millis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench match", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="*", default=[10_000, 100_000],
                        help="population sizes (10000 100000); the first is the base of the ratio")
    parser.add_argument("--queries", type=int, default=500, help="$match requests per size and way (500)")
    parser.add_argument("--check", type=int, default=300,
                        help="people loaded both through the writer and the fast path, compared (300; 0: skip)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the embedded store in this folder and reuse a population already loaded there")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--output", type=Path, default=RESULTS / "match.json")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        **results_header("Patient/$match latency on the embedded store"),
        "target": {"p95_ms_at_largest": TARGET_P95_MS}, "seed": args.seed, "runs": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        with EmbeddedStore(folder / "store") as uri:
            if args.check:
                result["check"] = asyncio.run(check(uri, folder / "hub", args.check, args.seed))
                print(f"check: {json.dumps(result['check'])}", flush=True)
            for people in args.people:
                run = measure(uri, folder / "hub", people, args.seed, args.queries)
                result["runs"].append(run)
                print(f"match {people}: {json.dumps(run)}", flush=True)
    runs = result["runs"]
    if len(runs) > 1:
        base = runs[0]
        result["p95_ratio"] = {way: round(runs[-1][way]["p95"] / base[way]["p95"], 2)
                               for way in ("service_ms", "http_ms")}
        result["meets_target"] = runs[-1]["http_ms"]["p95"] < TARGET_P95_MS
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0
