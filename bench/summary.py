"""``Patient/{id}/$summary`` latency for a patient with 50, 500 and 5,000 resources (issue 19: p95 < 100 ms at
500), beside fetching the same resources with plain searches in the same run.

**The store.** For each size one person with two records, at facility 79001 (70% of their resources) and 79002
(30%), linked by their CCCD, written through the hub's writer (each version with the access facts a decision
reads, the records linked to one master). Their resources cycle through what the summary's sections draw
from, with the statuses its filters leave out among them: Conditions (a third resolved, some entered in
error), AllergyIntolerances, MedicationStatements (some stopped, one in four with a contained Medication),
Immunizations, laboratory Observations (one in ten preliminary), vital signs, Procedures, DeviceUseStatements
and CarePlans. The person gave a privacy Consent permitting treatment, so the caller, a clinician of 79001,
reads both records and every read is judged by the consent gate, as a clinician's summary is.

**The measurement**, in process (no HTTP, token check or audit, which do not depend on the size), each
request in a fresh ``Session`` as a request has: **summary**, ``services.summary.summary_of`` and the
document's JSON; **searches**, what a client would send to fetch the same resources: one search per type the
sections draw from (``patient:mdm=`` the record, ``_count=1000``, every page followed) and each searchset's
JSON. Requests alternate between the two, so the machine's noise hits both; a warm-up round is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bench import results_header
from bench.consent import LOADER, consent, facility_caller, summary
from fhir_hub.api.searchset import searchset_json
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.config import Settings
from fhir_hub.fhir.jsonio import dumps
from fhir_hub.hub import Hub, running_hub
from fhir_hub.main import ready_to_measure
from fhir_hub.services import summary as service
from fhir_hub.services.search import search
from fhir_hub.services.session import Session
from fhir_hub.store.embedded import EmbeddedStore
from fhir_hub.store.writer import Update
from profiles.ips import default_rules

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P95_MS_AT_500 = 100.0
SIZES = (50, 500, 5000)
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
CLINICIAN = Caller(subject="bench-clinician", scopes=Scopes.parse("user/*.rs"), facility="79001",
                   fhir_user="Practitioner/bench-dr")
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_AIT = "http://terminology.hl7.org/CodeSystem/allergyintolerance"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _coded(system: str, code: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}], **({"text": text} if text else {})}


def resource(n: int, patient: str) -> dict[str, Any]:
    """The n-th resource of a record: the kinds cycle, a share of each with a status the summary leaves out."""
    subject = {"reference": f"Patient/{patient}"}
    rid = f"{patient}-{n:05d}"
    day = f"20{10 + n % 15}-{1 + n % 12:02d}-{1 + n % 28:02d}"
    kind = n % 20
    if kind < 2:
        clinical = ("active", "resolved", "active")[n % 3]
        return {"resourceType": "Condition", "id": rid, "subject": subject, "onsetDateTime": day,
                "code": _coded("http://hl7.org/fhir/sid/icd-10", "I10", "Tăng huyết áp"),
                "clinicalStatus": _coded(_CLINICAL, clinical)}
    if kind == 2:
        return {"resourceType": "AllergyIntolerance", "id": rid, "patient": subject, "code": {"text": "Penicillin"},
                "clinicalStatus": _coded(f"{_AIT}-clinical", "active"),
                "verificationStatus": _coded(f"{_AIT}-verification", "confirmed")}
    if kind < 5:
        statement: dict[str, Any] = {"resourceType": "MedicationStatement", "id": rid, "subject": subject,
                                     "status": "stopped" if n % 7 == 0 else "active", "effectiveDateTime": day}
        if n % 4 == 0:
            statement.update(contained=[{"resourceType": "Medication", "id": "m", "code": {"text": "Amlodipin"}}],
                             medicationReference={"reference": "#m"})
        else:
            statement["medicationCodeableConcept"] = {"text": "Metformin 500 mg"}
        return statement
    if kind == 5:
        return {"resourceType": "Immunization", "id": rid, "patient": subject, "status": "completed",
                "vaccineCode": {"text": "Cúm"}, "occurrenceDateTime": day}
    if kind < 14:
        return {"resourceType": "Observation", "id": rid, "subject": subject, "effectiveDateTime": day,
                "status": "preliminary" if n % 10 == 6 else "final", "category": [_coded(_CATEGORY, "laboratory")],
                "code": _coded("http://loinc.org", "2345-7", "Glucose"),
                "valueQuantity": {"value": 5 + n % 4, "unit": "mmol/L"}}
    if kind < 18:
        return {"resourceType": "Observation", "id": rid, "subject": subject, "effectiveDateTime": day,
                "status": "final", "category": [_coded(_CATEGORY, "vital-signs")],
                "code": _coded("http://loinc.org", "8480-6", "Systolic"),
                "valueQuantity": {"value": 110 + n % 40, "unit": "mmHg"}}
    if kind == 18:
        return {"resourceType": "Procedure", "id": rid, "subject": subject, "status": "completed",
                "code": {"text": "Nội soi"}, "performedDateTime": day}
    return {"resourceType": "CarePlan", "id": rid, "subject": subject, "status": "active", "intent": "plan",
            "title": "Theo dõi"}


def person_writes(size: int) -> list[tuple[Caller, dict[str, Any]]]:
    """A person of ``size`` resources: two linked records, their resources, a Consent permitting treatment."""
    records = (f"p{size}-a", "79001"), (f"p{size}-b", "79002")
    writes: list[tuple[Caller, dict[str, Any]]] = [
        (facility_caller(facility), {"resourceType": "Patient", "id": rid, "gender": "female",
                                     "birthDate": "1956-04-12", "name": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}],
                                     "identifier": [{"system": CCCD, "value": f"0791560{size:05d}"}]})
        for rid, facility in records]
    for n in range(size):
        rid, facility = records[0] if n % 10 < 7 else records[1]
        writes.append((facility_caller(facility), resource(n, rid)))
    writes.append((LOADER, consent(f"consent-{size}", records[0][0], "permit-all", random.Random(size))))
    return writes


async def load(hub: Hub, writes: list[tuple[Caller, dict[str, Any]]], concurrency: int) -> float:
    """Patients first (so the others link to them), then the rest ``concurrency`` at a time; seconds taken."""
    start = time.perf_counter()
    for caller, body in writes[:2]:
        await hub.writer.commit(Update("Patient", body["id"], body), caller=caller)
    queue = list(reversed(writes[2:]))

    async def worker() -> None:
        while queue:
            caller, body = queue.pop()
            await hub.writer.commit(Update(body["resourceType"], body["id"], body), caller=caller)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def one_summary(hub: Hub, record: str) -> tuple[float, int]:
    start = time.perf_counter()
    document = await service.summary_of(Session.open(hub, CLINICIAN), record, lang="vi")
    dumps(document)
    return (time.perf_counter() - start) * 1000, len(document["entry"])


async def one_fetch(hub: Hub, record: str) -> tuple[float, int]:
    """The same resources as a client fetches them: a search per type, every page, each searchset's JSON."""
    start = time.perf_counter()
    session = Session.open(hub, CLINICIAN)
    found = 0
    for rtype in default_rules().source_types:
        params = [("patient:mdm", f"Patient/{record}"), ("_count", "1000")]
        while True:
            page = await search(session, rtype, params)
            bundle = searchset_json(session.base_url, page)
            found += len(page.outcome.page)
            links = {link["relation"]: link["url"] for link in json.loads(bundle).get("link", [])}
            if "next" not in links:
                break
            params = [(k, v) for k, v in _query(links["next"]) if k != "_format"]
    return (time.perf_counter() - start) * 1000, found


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


async def measure(hub: Hub, record: str, requests: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"summary": [], "searches": []}
    counts: dict[str, int] = {}
    for n in range(requests + 2):  # two warm-up requests of each
        order = (("summary", one_summary), ("searches", one_fetch))
        for name, run in order if n % 2 else tuple(reversed(order)):
            millis, count = await run(hub, record)
            if n >= 2:
                times[name].append(millis)
            counts[name] = count
    result: dict[str, Any] = {name: {**summary(samples), "resources": counts[name]} for name, samples in times.items()}
    result["ratio_p50"] = round(result["summary"]["p50_ms"] / result["searches"]["p50_ms"], 2)
    return result


async def run(args: argparse.Namespace, uri: str, folder: Path) -> dict[str, Any]:
    settings = Settings(mongodb_uri=uri, db_name="bench_summary", data_dir=folder, validation_processes=0,
                        ingest_processes=0)
    result: dict[str, Any] = {}
    async with running_hub(settings) as hub:
        for size in args.sizes:
            writes = person_writes(size)
            seconds = await load(hub, writes, args.concurrency)
            print(f"loaded {size}: {len(writes)} resources in {seconds:.1f} s", flush=True)
        await ready_to_measure(hub)
        for size in args.sizes:
            result[str(size)] = await measure(hub, f"p{size}-a", args.requests)
            print(f"{size}: {json.dumps(result[str(size)])}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench summary", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="resources per person (50 500 5000)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests of each kind per size (20)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent writes while loading (8)")
    parser.add_argument("--output", type=Path, default=RESULTS / "summary.json")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        **results_header("Patient/$summary beside plain searches for the same resources"),
        "target": {"p95_ms_at_500": TARGET_P95_MS_AT_500}, "caller": "clinician of 79001 under a permit consent",
        "how": "in process: services.summary + the document's JSON, against services.search per type + searchsets"}
    with tempfile.TemporaryDirectory() as scratch, EmbeddedStore(Path(scratch) / "store") as uri:
        result["sizes"] = asyncio.run(run(args, uri, Path(scratch) / "hub"))
    at_500 = result["sizes"].get("500")
    result["target_met"] = at_500 is not None and at_500["summary"]["p95_ms"] <= TARGET_P95_MS_AT_500
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"target met: {result['target_met']}; wrote {args.output}")
    return 0

