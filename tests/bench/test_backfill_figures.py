"""The backfill benchmark's figures (``bench/backfill.py``), from job documents as the queue leaves them."""

from __future__ import annotations

from typing import Any

from bench.backfill import complete_over_time, figures, finished
from bench.backlog import Person

OLD, YOUNG, SICK = Person("1", "high", "age", 1, 1), Person("2", "low", "", 2), Person("3", "high", "chronic", 2, 1)


def _job(person: Person, done: int | None, tier: str, created: int = 10) -> dict[str, Any]:
    doc: dict[str, Any] = {"who": person.who, "tier": tier, "st": f"{'done' if done else 'dead'}|{tier}",
                           "res": {"created": created, "updated": 0}}
    if done:
        doc["done"] = done
    return doc


def test_a_person_is_complete_when_the_last_of_their_jobs_is_done() -> None:
    jobs = [_job(OLD, 1_500, "high"), _job(SICK, 2_000, "high"), _job(YOUNG, 3_000, "low"),
            _job(SICK, 4_000, "low"), _job(YOUNG, 5_000, "low")]
    done = finished(jobs, [OLD, YOUNG, SICK])
    assert done.complete_at == {OLD.who: 1_500, YOUNG.who: 5_000, SICK.who: 4_000}
    assert done.not_high == {SICK.who}
    found = figures(done, [OLD, YOUNG, SICK], start=1_000, sent=2_000)
    assert found["high_risk_complete_s"] == 3.0 and found["high_risk_share_of_jobs_done"] == 0.8
    assert found["high_risk_every_record_high_complete_s"] == 0.5  # OLD alone
    assert found["high_risk_every_record_high_share_of_jobs_done"] == 0.2
    assert found["high_risk_people_with_a_job_below_high"] == 1
    assert found["backlog_done_s"] == 4.0 and found["resources_per_s"] == 12.5
    assert found["resources_per_s_after_all_sent"] == 10.0  # 30 resources in the 3 s after the last payload
    curves = complete_over_time(done, [OLD, YOUNG, SICK], start=1_000, step_ms=1_000)
    assert curves["seconds"] == [0, 1, 2, 3, 4] and curves["high"] == [0, 1, 1, 2, 2]
    assert curves["low"] == [0, 0, 0, 0, 1] and curves["jobs"] == [0, 2, 3, 4, 5]


def test_a_dead_job_leaves_its_person_incomplete() -> None:
    done = finished([_job(OLD, None, "high")], [OLD])
    assert done.dead == 1 and done.complete_at == {OLD.who: None}
    assert figures(done, [OLD], start=0, sent=0)["high_risk_complete_s"] is None
