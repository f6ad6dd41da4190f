"""A payload with hundreds of thousands of bad records gets a sane answer and a stored report.

The attack: a CSV of 200,000 rejected rows answered 500, because the whole ingest report (every rejection)
was written into the archive document, past MongoDB's 16 MB document limit. The archive document now keeps
the counts and the first problems, every problem is kept in chunks of its own, and the answer lists the
first problems and says how many more there are.
"""

from __future__ import annotations

from typing import Any

import bson
from fastapi.testclient import TestClient
from pymongo import MongoClient

from fhir_hub.config import Settings
from fhir_hub.ingest.archive import FIRST_PROBLEMS, INGEST_PROBLEMS
from fhir_hub.store.schema import INGEST_ARCHIVE

ROWS = 200_000


def _values(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text[:800]
    return {p["name"]: p.get("resource") or next((v for k, v in p.items() if k.startswith("value")), None)
            for p in answer.json()["parameter"]}


def test_a_csv_of_200000_rejected_rows_answers_with_counts_and_keeps_every_problem(client: TestClient,
                                                                                 settings: Settings) -> None:
    rows = "".join(f"BN{i},Lê Lan,31/02/1990\n" for i in range(ROWS))  # 31 February: every row is rejected
    payload = ("ma_benh_nhan,ho_ten,ngay_sinh\n" + rows).encode()
    answer = client.post("/$ingest", content=payload, params={"filename": "patients.csv"},
                         headers={"Content-Type": "text/csv", "Accept": "application/fhir+json"})
    values = _values(answer)
    assert values["recordsRejected"] == ROWS and values["recordsAccepted"] == 0
    assert len(answer.content) < 200_000  # the first problems, not all of them
    issues = values["outcome"]["issue"]
    assert len(issues) == FIRST_PROBLEMS + 1
    assert issues[0]["expression"] == ["patients.csv:ngay_sinh"] and "line 2" in issues[0]["diagnostics"]
    more = issues[-1]
    assert more["severity"] == "information" and f"{ROWS - FIRST_PROBLEMS:,}" in more["diagnostics"]
    assert values["archive"] in more["diagnostics"]

    with MongoClient(settings.mongodb_uri) as mongo:
        db = mongo[settings.db_name]
        archived = db[INGEST_ARCHIVE].find_one({"_id": values["archive"]})
        assert archived is not None
        kept = archived["report"]
        assert kept["records"]["rejected"] == ROWS and len(kept["problems"]["first"]) == FIRST_PROBLEMS
        assert len(bson.encode(archived)) - len(archived["payload"]) < 1_000_000
        chunks = list(db[INGEST_PROBLEMS].find({"archive": values["archive"]}).sort("_id"))
        every = [p for chunk in chunks for p in chunk["problems"]]
        assert len(every) == ROWS and every[-1]["record"] == f"patients.csv line {ROWS + 1}"
        assert all(len(bson.encode(chunk)) < 4_000_000 for chunk in chunks)


def test_replaying_a_payload_replaces_its_stored_problems_rather_than_piling_them_up(client: TestClient,
                                                                                     settings: Settings) -> None:
    payload = "ma_benh_nhan,ho_ten,ngay_sinh\nBN1,Lê Lan,31/02/1990\nBN2,Lê Hoa,30/02/1991\n".encode()
    archive = _values(client.post("/$ingest", content=payload, params={"filename": "patients.csv"},
                                  headers={"Content-Type": "text/csv", "Accept": "application/fhir+json"}))["archive"]
    for _ in range(2):
        replayed = _values(client.post("/$replay", params={"archive": archive},
                                       headers={"Accept": "application/fhir+json"}))
        assert replayed["recordsRejected"] == 2
    with MongoClient(settings.mongodb_uri) as mongo:
        db = mongo[settings.db_name]
        run = db[INGEST_ARCHIVE].find_one({"_id": archive})["report"]["problems"]["run"]
        chunks = list(db[INGEST_PROBLEMS].find({"archive": archive}))
        assert [c["run"] for c in chunks] == [run] and len(chunks[0]["problems"]) == 2
