"""One HL7 v2 payload must not stall the hub.

Two defences, each tested: a field repeated (or split into components) past the limit rejects its message
alone, naming the field, before the parser spends seconds on it; and parsing and mapping run in a worker
process, so the hub keeps answering other requests while a large payload is mapped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient

from adapters.base import Limits, Source
from adapters.hl7v2 import Hl7v2Adapter
from adapters.hl7v2.er7 import Encoding
from adapters.hl7v2.parse import Unreadable, check_limits
from fhir_hub.config import ConfigError, Settings
from fhir_hub.main import create_app
from fhir_hub.store.schema import INGEST_ARCHIVE
from tests.conftest import auth, fixture_path, token_for

HL7 = {"Content-Type": "x-application/hl7-v2+er7", "Accept": "application/fhir+json"}
ENC = Encoding()


def _message(control_id: str, pid3: str) -> str:
    return (f"MSH|^~\\&|HIS|79001|HUB|SYT|20240501083000+0700||ADT^A04|{control_id}|P|2.5\r"
            f"EVN|A04|20240501083000\rPID|1||{pid3}||Nguyễn^Văn An||19900101|M\r")


def _errors(answer: httpx.Response) -> list[dict[str, object]]:
    assert answer.status_code == 200, answer.text[:500]
    outcome = next((p["resource"] for p in answer.json()["parameter"] if p["name"] == "outcome"), {"issue": []})
    return [i for i in outcome["issue"] if i["severity"] == "error"]


# ------------------------------------------------------------------------------------------------ limits
def test_a_pid3_repeated_thousands_of_times_is_rejected_naming_pid3_and_the_good_messages_ingest(
        client: TestClient) -> None:
    flood = "~".join(f"X{i}^^^^MR" for i in range(5000))
    payload = "\n".join([_message("GOOD1", "BN1^^^^MR"), _message("FLOOD", flood), _message("GOOD2", "BN2^^^^MR")])
    answer = client.post("/$ingest", content=payload.encode(), headers=HL7)
    (error,) = _errors(answer)
    assert error["expression"] == ["PID-3"] and "5000" in str(error["diagnostics"])
    assert str(error["diagnostics"]).startswith("MSH-10=FLOOD")
    assert client.get("/Patient", params={"_summary": "count"}).json()["total"] == 2
    acks = client.post("/$ingest", content=payload.encode(), headers={"Content-Type": HL7["Content-Type"]}).content
    assert b"MSA|AR|FLOOD" in acks and b"PID-3" in acks and b"MSA|AA|GOOD1" in acks and b"MSA|AA|GOOD2" in acks


def test_the_repetition_limit_is_read_from_the_environment(settings: Settings) -> None:
    configured = Settings.from_env({"FHIR_HUB_HL7V2_MAX_REPETITIONS": "3"})
    assert configured.hl7v2_max_repetitions == 3
    with pytest.raises(ConfigError, match="FHIR_HUB_HL7V2_MAX_REPETITIONS"):
        Settings.from_env({"FHIR_HUB_HL7V2_MAX_REPETITIONS": "0"})
    tight = settings.with_(hl7v2_max_repetitions=3)
    with TestClient(create_app(tight), raise_server_exceptions=False, headers=auth(token_for(tight))) as client:
        four = "~".join(f"X{i}^^^^MR" for i in range(4))
        (error,) = _errors(client.post("/$ingest", content=_message("FOUR", four).encode(), headers=HL7))
        assert error["expression"] == ["PID-3"]


_SEGMENTS = st.sampled_from([("PID", 3), ("PID", 11), ("NTE", 3), ("OBX", 5), ("ZPI", 1), ("ZPI", 7)])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=_SEGMENTS, repetitions=st.integers(1, 12), parts=st.integers(1, 10), subparts=st.integers(1, 4))
def test_a_field_over_the_limits_is_refused_by_name_and_one_within_them_is_read(
        where: tuple[str, int], repetitions: int, parts: int, subparts: int) -> None:
    limits = Limits(hl7v2_max_repetitions=6, hl7v2_max_parts=8)
    name, number = where
    value = "~".join("^".join("&".join(["v"] * subparts) for _ in range(parts)) for _ in range(repetitions))
    fields = ["x"] * (number - 1) + [value]
    lines = ["MSH|^~\\&|A|79001|C|D|20240501||ADT^A04|C1|P|2.5", f"{name}|" + "|".join(fields)]
    splits = repetitions * (parts - 1 + parts * (subparts - 1))
    over = repetitions > 6 or splits > 8 * repetitions
    try:
        check_limits(lines, ENC, limits)
    except Unreadable as exc:
        assert over and exc.field == f"{name}-{number}"
    else:
        assert not over


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 12), min_size=1, max_size=5))
def test_only_the_messages_over_the_limit_are_rejected(repetitions: list[int]) -> None:
    adapter = Hl7v2Adapter(Limits(hl7v2_max_repetitions=6))
    payload = "\n".join(_message(f"M{i}", "~".join(f"X{i}-{r}^^^79001^MR" for r in range(n)))
                        for i, n in enumerate(repetitions))
    mapping = adapter.map(payload.encode(), Source("hl7v2"))
    assert [r.key for r in mapping.records] == [f"MSH-10=M{i}" for i, n in enumerate(repetitions) if n <= 6]
    assert [(p.record, p.field) for p in mapping.rejected] == [
        (f"MSH-10=M{i}", "PID-3") for i, n in enumerate(repetitions) if n > 6]


# ----------------------------------------------------------------------------------- the event loop
@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The production path: payloads mapped in a worker process (the suite's default is a thread)."""
    return settings.with_(ingest_processes=1)


@pytest.fixture
def archive_count(settings: Settings) -> Iterator[object]:
    """1 once the payload is archived. A plain ``find``, not ``count_documents``: on nx-27017 an aggregation
    from another connection while the hub commits a transaction breaks that transaction's savepoint (the
    store's own counts take its write gate for this reason, ``store/count.py``); this test made $ingest
    answer 500 now and then (twice in the full runs of one session)."""
    with MongoClient(settings.mongodb_uri) as mongo:
        collection = mongo[settings.db_name][INGEST_ARCHIVE]
        yield lambda: int(collection.find_one({}, {"_id": 1}) is not None)


def test_reads_keep_answering_while_a_large_hl7_payload_is_mapped(live_server: str, settings: Settings,
                                                                  archive_count: object) -> None:
    """While the worker maps 15 ADT messages and a 240 KB one repeating PID-3 20,000 times (refused by the
    limit at once, as it must not cost seconds of the worker either), the test reads in a loop:
    /metadata, a stored Organization, and the Encounter count, which stays 0 until the first record of
    the payload is committed (all mapping comes before the first commit). Reads answered after the payload
    was archived and before any of it was committed were answered while it was being mapped. On an event
    loop that maps, not one is (a request waits for the whole mapping, then meets the first commits); off
    the loop they are many. No duration is measured: the loop ends when the ingest answers."""
    adt = fixture_path("hl7v2", "messages", "ADT-A01-01.hl7").read_bytes().removeprefix(b"\xef\xbb\xbf").strip()
    messages = [adt.replace(b"|MSG00001|", f"|LOOP{i:04d}|".encode()) for i in range(15)]
    flood = _message("FLOOD", "~".join(f"X{i:05d}^^^^MR" for i in range(20_000))).encode()
    payload = b"\r".join([*messages[:7], flood, *messages[7:]])
    headers = auth(token_for(settings))
    count = archive_count  # type: ignore[assignment]
    with httpx.Client(base_url=live_server, headers=headers, timeout=300) as reader, \
            httpx.Client(base_url=live_server, headers=headers, timeout=300) as sender:
        organization = reader.post("/Organization", json={"resourceType": "Organization", "name": "Bệnh viện"})
        assert organization.status_code == 201
        answers: list[httpx.Response] = []
        sending = threading.Thread(target=lambda: answers.append(sender.post("/$ingest", content=payload,
                                                                              headers=HL7)), daemon=True)
        sending.start()
        during_mapping = 0
        while sending.is_alive():
            archived = count() == 1  # type: ignore[operator]
            assert reader.get("/metadata").status_code == 200
            assert reader.get(f"/Organization/{organization.json()['id']}").status_code == 200
            nothing_committed = reader.get("/Encounter", params={"_summary": "count"}).json()["total"] == 0
            during_mapping += archived and nothing_committed and sending.is_alive()
        sending.join()
    assert [(e["expression"], str(e["diagnostics"])[:12]) for e in _errors(answers[0])] == [
        (["PID-3"], "MSH-10=FLOOD")]
    assert during_mapping >= 5, during_mapping
