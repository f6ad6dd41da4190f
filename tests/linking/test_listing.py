"""``GET /Patient`` with no criteria pages through the facilities' records in key order straight from the
store, the masters (one key range) left out of the pages and the total, however the pages fall."""

from __future__ import annotations

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def test_listing_leaves_the_masters_out_of_every_page(client: TestClient) -> None:
    ids = []
    for n, rid in enumerate(["aa", "ab", "m", "master", "mz", "n1", "zz"]):  # around the masters' key range
        body = {"resourceType": "Patient", "id": rid, "name": [{"family": f"Họ{n}", "given": [f"Tên{n}"]}],
                "birthDate": f"19{50 + n}-01-01", "gender": "male"}
        assert client.put(f"/Patient/{rid}", json=body, headers=FHIR).status_code == 201
        ids.append(rid)
    for count in (1, 2, 3, 7, 20):
        seen, url = [], f"/Patient?_count={count}"
        while url:
            page = client.get(url).json()
            assert page["total"] == 7
            seen += [e["resource"]["id"] for e in page.get("entry", [])]
            url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        assert seen == sorted(ids), count  # every record once, in key order, no master
