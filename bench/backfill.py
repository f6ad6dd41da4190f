"""A city backlog through the priority queue: how soon high-risk people are complete, beside arrival order.

The backlog (``bench/backlog.py``): ``--payloads`` one-episode MoH XML files for ``--people`` people, about
20% high-risk (60 and over, or a chronic diagnosis the risk rules name), shuffled so both tiers arrive
interleaved. It is run three times in one invocation, each time on a fresh database of the same embedded store:

- priority: the hub (``fhir-hub serve``, as deployed, no worker of its own) takes every payload with
  ``Prefer: respond-async`` from ``--senders`` client threads, so each record becomes a job whose priority
  is its risk; ``--workers`` ``fhir-hub worker`` processes run from the start;
- arrival: the same, with ``FHIR_HUB_QUEUE_BY_RISK=false``: every job at one priority, claimed in arrival
  order (the jobs still record their tier, so the same figures can be read);
- one-per-transaction: the priority run with ``FHIR_HUB_RECORDS_PER_TRANSACTION=1`` (each worker commits one
  record per store transaction): what committing several together buys.

A person is complete when every job carrying one of their records is done (the job's ``who`` is their CCCD
key); each job ends by writing the person's priority record (Flags and summary; cohort Groups and worklists
are read from those per request). Each job's completion time is the queue's own ``done`` stamp, so the curves of
people complete over time are exact; a poll of the queue's counts every ``--sample`` seconds during the run
is kept beside them (and says when the run is over). Per run: when the last high-risk person was complete
and the share of all jobs (and of all resources stored) done by then (target: under 35%), when the whole
backlog was done, and resources stored per second from the first payload sent to the last job done (target:
at least 1,000 with 2 workers). Written to ``bench/results/backfill.json`` and plotted to ``backfill.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench import queue_counts, results_header, store_lock
from bench.backlog import Backlog, Person, generate_backlog
from bench.rest import Hub
from fhir_hub.store.embedded import EmbeddedStore
from fhir_hub.store.schema import QUEUE

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SHARE = 0.35
TARGET_RESOURCES_PER_S = 1000
MODES = {  # the settings each run's hub and workers get
    "priority": {"FHIR_HUB_QUEUE_BY_RISK": "true"},
    "arrival": {"FHIR_HUB_QUEUE_BY_RISK": "false"},
    # what committing several records per store transaction buys: the priority run, one record at a time
    "one-per-transaction": {"FHIR_HUB_QUEUE_BY_RISK": "true", "FHIR_HUB_RECORDS_PER_TRANSACTION": "1"},
}
TIERS = ("high", "low")
PENDING = ("ready", "leased", "delayed")


# ------------------------------------------------------------------------------------------ figures (pure)
@dataclass
class Finished:
    """What the job documents say once the run is over."""

    jobs: int = 0
    dead: int = 0
    done_at: list[int] = field(default_factory=list)  # every done job's stamp, sorted
    resources_at: list[tuple[int, int]] = field(default_factory=list)  # (stamp, resources stored), sorted
    complete_at: dict[str, int | None] = field(default_factory=dict)  # who -> when the person was complete
    not_high: set[str] = field(default_factory=set)  # high-risk people with a job whose tier is not high


def finished(docs: Iterable[dict[str, Any]], people: list[Person]) -> Finished:
    """Each person's completion time: the last of their jobs' ``done`` stamps once they are all done (None if
    one is missing or dead); and the done stamps of all jobs, with the resources each stored."""
    out = Finished()
    expected = {p.who: p.records for p in people}
    high = {p.who for p in people if p.tier == "high"}
    per_person: dict[str, list[int]] = {}
    for doc in docs:
        out.jobs += 1
        state = str(doc.get("st", "")).split("|")[0]
        who = doc.get("who")
        if who in high and doc.get("tier") != "high":
            out.not_high.add(who)
        if state != "done":
            out.dead += state == "dead"
            continue
        result = doc.get("res") or {}
        out.done_at.append(int(doc["done"]))
        out.resources_at.append((int(doc["done"]), int(result.get("created", 0)) + int(result.get("updated", 0))))
        if who is not None:
            per_person.setdefault(who, []).append(int(doc["done"]))
    out.done_at.sort()
    out.resources_at.sort()
    out.complete_at = {who: max(stamps) if len(stamps := per_person.get(who, [])) == count else None
                       for who, count in expected.items()}
    return out


def share_done_by(stamps: list[int], at: int) -> float:
    """The share of ``stamps`` (sorted) at or before ``at``."""
    return bisect_right(stamps, at) / len(stamps) if stamps else 0.0


def complete_over_time(done: Finished, people: list[Person], start: int, step_ms: int
                       ) -> dict[str, list[float]]:
    """Seconds since ``start`` every ``step_ms`` until the last completion, and the people of each tier
    complete by then."""
    last = max([t for t in done.complete_at.values() if t is not None] + [start])
    times = list(range(start, last + step_ms, step_ms))
    curves: dict[str, list[float]] = {"seconds": [round((t - start) / 1000, 2) for t in times]}
    groups = {tier: [p for p in people if p.tier == tier] for tier in TIERS}
    groups["high_every_record_high"] = [p for p in people if p.every_record_high]
    for name, group in groups.items():
        stamps = sorted(t for p in group if (t := done.complete_at[p.who]) is not None)
        curves[name] = [bisect_right(stamps, t) for t in times]
    curves["jobs"] = [bisect_right(done.done_at, t) for t in times]
    return curves


def _when_complete(done: Finished, people: Iterable[Person], start: int, prefix: str) -> dict[str, Any]:
    """When the last of ``people`` was complete, and the share of jobs and resources done by then."""
    stamps = [done.complete_at[p.who] for p in people]
    last = max(t for t in stamps if t is not None) if stamps and None not in stamps else None
    resources = sum(n for _, n in done.resources_at)
    by_then = sum(n for t, n in done.resources_at if last is not None and t <= last)
    return {f"{prefix}people": len(stamps),
            f"{prefix}complete_s": round((last - start) / 1000, 1) if last is not None else None,
            f"{prefix}share_of_jobs_done": round(share_done_by(done.done_at, last), 3) if last is not None else None,
            f"{prefix}share_of_resources_done": round(by_then / resources, 3) if last is not None and resources
            else None}


def figures(done: Finished, people: list[Person], start: int, sent: int) -> dict[str, Any]:
    """The run's figures: when high-risk people and the backlog were complete, and the work done by then;
    the same for the high-risk people each of whose records is high-risk on its own (the others have a
    record that is not; when it arrives after their high-risk one, the queue leaves it low: ``ingest_jobs``
    raises only the jobs waiting when a more urgent record comes), and how many had a job left below high."""
    high = [p for p in people if p.tier == "high"]
    end = max(done.done_at) if done.done_at else start
    resources = sum(n for _, n in done.resources_at)
    after_sent = sum(n for t, n in done.resources_at if t > sent)
    seconds = max((end - start) / 1000, 1e-9)
    return {
        "jobs": done.jobs, "jobs_done": len(done.done_at), "jobs_dead": done.dead,
        "people": len(people), "people_complete": sum(t is not None for t in done.complete_at.values()),
        **_when_complete(done, high, start, "high_risk_"),
        "high_risk_people_with_a_job_below_high": len(done.not_high),
        **_when_complete(done, [p for p in high if p.every_record_high], start, "high_risk_every_record_high_"),
        "all_sent_s": round((sent - start) / 1000, 1),
        "backlog_done_s": round(seconds, 1),
        "resources_stored": resources,
        "resources_per_s": round(resources / seconds, 1),
        "resources_per_s_after_all_sent": round(after_sent / max((end - sent) / 1000, 1e-9), 1),
        "jobs_per_s": round(len(done.done_at) / seconds, 1),
    }


# ------------------------------------------------------------------------------------------ one run
def _worker(uri: str, db_name: str, data_dir: Path, log: Path, settings: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FHIR_HUB_MONGODB_URI": uri, "FHIR_HUB_DB_NAME": db_name, "FHIR_HUB_DATA_DIR": str(data_dir),
           "FHIR_HUB_LOG_LEVEL": "info", **settings}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "fhir_hub", "worker"], env=env, stdout=subprocess.DEVNULL,
                                stderr=out)


def _wait_until_claiming(logs: list[Path], timeout_s: float = 120) -> None:
    """Until every worker says it is claiming jobs: the clock starts with workers ready, not starting up."""
    deadline = time.monotonic() + timeout_s
    while not all("claiming jobs" in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not start; see {', '.join(map(str, logs))}")
        time.sleep(0.1)


def _send(hub: Hub, payloads: Iterator[bytes], lock: threading.Lock, failures: list[str], ended: list[int]
          ) -> None:
    """Post payloads until none is left (taken in arrival order from the shared iterator); when it ended."""
    conn = hub.connection()
    headers = {"Authorization": f"Bearer {hub.token}", "Content-Type": "application/xml",
               "Accept": "application/fhir+json", "Prefer": "respond-async"}
    while True:
        with lock:
            body = next(payloads, None)
        if body is None:
            break
        conn.request("POST", "/$ingest?filename=xml130.xml", body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read()
        if answer.status != 202:
            failures.append(f"{answer.status} {text[:300]!r}")
    conn.close()
    ended.append(int(time.time() * 1000))


def run(mode: str, backlog: Backlog, uri: str, data_dir: Path, *, workers: int, senders: int,
        sample_s: float) -> dict[str, Any]:
    db_name = f"bench_backfill_{mode}"
    hub = Hub(uri, data_dir, db_name=db_name,
              env={"FHIR_HUB_QUEUE_WORKERS": "0", **MODES[mode]})
    logs = [data_dir / f"worker-{n}.log" for n in range(workers)]
    procs = [_worker(uri, db_name, data_dir, log, MODES[mode]) for log in logs]
    _wait_until_claiming(logs)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    jobs = client[db_name][QUEUE]
    counting = store_lock(uri, db_name)  # held while the queue is counted (bench.queue_counts)
    samples: list[dict[str, Any]] = []
    failures: list[str] = []
    ended: list[int] = []
    try:
        lock = threading.Lock()
        payloads = iter([p.body for p in backlog.payloads])
        threads = [threading.Thread(target=_send, args=(hub, payloads, lock, failures, ended)) for _ in range(senders)]
        start = int(time.time() * 1000)
        for thread in threads:
            thread.start()
        while True:
            time.sleep(sample_s)
            counts = queue_counts(jobs, counting)
            now = int(time.time() * 1000)
            sending = any(t.is_alive() for t in threads)
            samples.append({"s": round((now - start) / 1000, 2),
                            "done": {t: counts.get("done", {}).get(t, 0) for t in TIERS},
                            "pending": sum(sum(counts.get(s, {}).values()) for s in PENDING)})
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker stopped before the backlog was done; see {data_dir}/worker-*.log")
            if not sending and samples[-1]["pending"] == 0:
                break
            print(f"{mode}: {samples[-1]['s']:7.1f} s  done {samples[-1]['done']}  pending {samples[-1]['pending']}",
                  flush=True)
        if failures:
            raise RuntimeError(f"{len(failures)} payloads refused, e.g. {failures[0]}")
        done = finished(jobs.find({}, {"who": 1, "st": 1, "tier": 1, "done": 1, "res": 1}), backlog.people)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        hub.stop()
        client.close()
        if counting is not None:
            counting.close()
    result = {"mode": mode, **figures(done, backlog.people, start, max(ended))}
    print(json.dumps(result), flush=True)
    return {**result, "completed_people": complete_over_time(done, backlog.people, start, int(sample_s * 1000)),
            "samples": samples}


# ------------------------------------------------------------------------------------------ plot
def plot(runs: list[dict[str, Any]], people: dict[str, int], path: Path) -> None:
    """``people``: how many in each curve of ``complete_over_time`` (the tiers, and the high-risk people each
    of whose records is high-risk on its own)."""
    """Completed people over time by tier, one panel per run, on one time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.2), sharey=True, sharex=True)
    for ax, result in zip(axes if len(runs) > 1 else [axes], runs, strict=True):
        curves = result["completed_people"]
        for name, colour, style, label in (
                ("high", "tab:red", "-", "high-risk people complete"),
                ("high_every_record_high", "tab:red", ":", "  of them, every record high-risk on its own"),
                ("low", "tab:blue", "-", "low-risk people complete")):
            ax.plot(curves["seconds"], [100 * n / max(people[name], 1) for n in curves[name]], color=colour,
                    linestyle=style, label=f"{label} ({people[name]:,})")
        ax.plot(curves["seconds"], [100 * n / max(result["jobs"], 1) for n in curves["jobs"]], color="grey",
                linestyle="--", label="all jobs done")
        if result["high_risk_complete_s"] is not None:
            ax.axvline(result["high_risk_complete_s"], color="tab:red", linestyle="-.", linewidth=0.8)
        share = result["high_risk_share_of_jobs_done"]
        ax.set_title(f"{result['mode']} order: all high-risk complete at "
                     f"{share:.0%} of the work" if share is not None else result["mode"])
        ax.set_xlabel("seconds since the first payload")
        ax.grid(alpha=0.3)
    (axes[0] if len(runs) > 1 else axes).set_ylabel("% complete")
    (axes[0] if len(runs) > 1 else axes).legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000, help="people in the backlog (5000)")
    parser.add_argument("--payloads", type=int, default=20000, help="MoH XML payloads, one episode each (20000)")
    parser.add_argument("--high-share", type=float, default=0.2, help="share of high-risk people (0.2)")
    parser.add_argument("--chronic-repeat", type=float, default=0.5,
                        help="chance that a chronic person's other records name the disease again (0.5)")
    parser.add_argument("--workers", type=int, default=2, help="fhir-hub worker processes (2)")
    parser.add_argument("--senders", type=int, default=2, help="client threads posting the payloads (2)")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between samples (0.5)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--output", type=Path, default=RESULTS / "backfill.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "backfill.png")
    args = parser.parse_args(argv)
    started = time.monotonic()
    backlog = generate_backlog(args.people, args.payloads, seed=args.seed, high_share=args.high_share,
                               chronic_repeat=args.chronic_repeat)
    people = {tier: sum(p.tier == tier for p in backlog.people) for tier in TIERS}
    people["high_every_record_high"] = sum(p.every_record_high for p in backlog.people)
    print(f"backlog: {len(backlog.payloads):,} payloads for {len(backlog.people):,} people "
          f"({people['high']:,} high-risk), generated in {time.monotonic() - started:.1f} s", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "store") as uri:
        for mode in args.modes:
            runs.append(run(mode, backlog, uri, Path(tmp) / f"hub-{mode}", workers=args.workers,
                            senders=args.senders, sample_s=args.sample))
    result = {**results_header(__doc__.splitlines()[0]),
              "complete_means": "every job carrying one of the person's records is done (each job ends by writing "
                                "the person's priority record: their Flags and summary Composition; cohort Groups "
                                "and worklists are read from those)",
              "backlog": {"people": len(backlog.people), "payloads": len(backlog.payloads), "format": "moh-xml",
                          "records_per_payload": 1, "high_risk_people": people["high"],
                          "high_risk_by_age": sum(p.why == "age" for p in backlog.people),
                          "high_risk_by_chronic_diagnosis": sum(p.why == "chronic" for p in backlog.people),
                          "high_risk_payloads": sum(p.high for p in backlog.payloads),
                          "high_risk_people_every_record_high": people["high_every_record_high"],
                          "chronic_repeat": args.chronic_repeat, "seed": args.seed},
              "workers": args.workers, "senders": args.senders,
              "targets": {"share_of_work_when_high_risk_complete_below": TARGET_SHARE,
                          "resources_per_s_at_least": TARGET_RESOURCES_PER_S},
              "runs": runs, "wall_s": round(time.monotonic() - started, 1)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    plot(runs, people, args.plot)
    print(f"wrote {args.output} and {args.plot} in {result['wall_s']} s")
    return 0
