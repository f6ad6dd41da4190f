"""The backfill benchmark's backlog (``bench/backlog.py``): what the benchmark's figures rest on is that it
knows who is high-risk and which record is whose, so those are checked against the hub's own reading."""

from __future__ import annotations

import random
from collections import Counter

from adapters.base import Source
from adapters.moh_xml import MohXmlAdapter
from bench.backlog import generate_backlog, records_per_person, risk_codes
from fhir_hub.queue.ingest_jobs import urgency


def test_records_are_spread_over_every_person_and_sum_to_the_payloads() -> None:
    counts = records_per_person(50, 200, random.Random(1))
    assert len(counts) == 50 and sum(counts) == 200 and min(counts) >= 1


def test_the_risk_codes_are_those_the_rules_name() -> None:
    assert risk_codes(["I10", "E11.9", "J45", "I63.9", "J18.9", "K29.7", "E78.5", "A09"]) == {
        "I10", "E11.9", "J45", "I63.9"}


def test_about_a_fifth_of_the_people_are_high_risk_and_they_arrive_interleaved() -> None:
    backlog = generate_backlog(1000, 1200, seed=3)
    assert len(backlog.payloads) == 1200 and Counter(p.person for p in backlog.payloads) == {
        i: person.records for i, person in enumerate(backlog.people)}
    assert 0.17 <= backlog.high_share() <= 0.23
    assert {p.why for p in backlog.people if p.tier == "high"} == {"age", "chronic"}
    high_at = [n for n, p in enumerate(backlog.payloads) if backlog.people[p.person].tier == "high"]
    first_half = sum(n < 600 for n in high_at) / len(high_at)
    assert 0.4 <= first_half <= 0.6  # not all at the front nor at the back


def test_each_payload_maps_to_one_record_of_its_person_with_the_risk_the_hub_reads() -> None:
    backlog = generate_backlog(20, 60, seed=8)  # both kinds of high risk, some records not
    adapter, source = MohXmlAdapter(), Source("moh-xml", "79001")
    for payload in backlog.payloads:
        mapping = adapter.map(payload.body, source, filename="xml130.xml")
        assert len(mapping.records) == 1 and not mapping.rejected and not mapping.warnings
        found = urgency(mapping.records[0])
        person = backlog.people[payload.person]
        assert found.who == person.who
        assert (found.tier == "high") == payload.high
        assert not payload.high or person.tier == "high"
    assert {p.tier for p in backlog.people} == {"high", "low"}
    for i, person in enumerate(backlog.people):
        assert person.high_records == sum(p.high for p in backlog.payloads if p.person == i)
    assert any(p.every_record_high for p in backlog.people)
    assert any(p.tier == "high" and not p.every_record_high for p in backlog.people)


def test_the_same_arguments_give_the_same_backlog() -> None:
    one, two = generate_backlog(10, 30, seed=7), generate_backlog(10, 30, seed=7)
    assert [p.body for p in one.payloads] == [p.body for p in two.payloads] and one.people == two.people
