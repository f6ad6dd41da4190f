"""A clinic's CSV with a stray quote, through POST /$ingest: the row with the quote is rejected with its line,
every other row is stored (the csv module alone would swallow the rest of the file into one value)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.ingest.test_ingest_api import issues, post, report, total

ROWS = ["BN1,Nguyễn Văn An,1985", "BN2,Trần Thị Bình,1990", "BN3,Lê Văn Cường,1978", "BN4,Phạm Thị Dung,2001",
        'BN5,"Hoàng Văn Em,1969', "BN6,Võ Thị Phương,1955", "BN7,Đặng Văn Giang,1999", "BN8,Bùi Thị Hoa,2010"]


def test_a_stray_quote_on_row_5_costs_row_5_not_the_rows_after_it(client: TestClient) -> None:
    payload = "\n".join(["ma_benh_nhan,ho_ten,ngay_sinh", *ROWS, ""]).encode()
    values = report(post(client, payload, "text/csv", filename="patients.csv"))
    assert values["recordsAccepted"] == 7 and values["recordsRejected"] == 1
    (error,) = issues(values, "error")
    assert "patients.csv line 6" in error["diagnostics"] and "quote" in error["diagnostics"], error
    assert total(client, "Patient") == 7
    names = {e["resource"]["name"][0]["text"] for e in client.get("/Patient", params={"_count": 20}).json()["entry"]}
    assert {"Võ Thị Phương", "Đặng Văn Giang", "Bùi Thị Hoa"} <= names


def test_a_row_with_two_faults_is_one_rejected_record(client: TestClient) -> None:
    """Every row is accounted for once: accepted and rejected add up to the rows of the file."""
    rows = ["BN1,Nguyễn Văn An,1985", "BN2,,19x90", 'BN3,"Lê Văn Cường,1978', "BN4,Phạm Thị Dung,2001"]
    values = report(post(client, "\n".join(["ma_benh_nhan,ho_ten,ngay_sinh", *rows, ""]).encode(), "text/csv",
                         filename="patients.csv"))
    assert values["recordsAccepted"] == 2 and values["recordsRejected"] == 2
    assert len(issues(values, "error")) == 3  # each fault still named
