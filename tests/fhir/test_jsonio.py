"""FHIR JSON keeps decimals exactly as written: their precision is part of the value (R4 datatypes#decimal)."""

from __future__ import annotations

from decimal import Decimal

import orjson
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.fhir.jsonio import dumps, loads

decimals = st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**6, max_value=10**6)


@given(st.lists(decimals, min_size=1, max_size=5), st.booleans())
def test_decimals_survive_a_round_trip_as_written(values: list[Decimal], exponent: bool) -> None:
    texts = [f"{v:E}" if exponent else str(v) for v in values]  # 5.4000, -0.0100, 1.2340E+2 ...
    body = ('{"resourceType":"Observation","component":[' +
            ",".join(f'{{"valueQuantity":{{"value":{t}}}}}' for t in texts) + "]}").encode()
    again = dumps(loads(body))
    assert [str(c["valueQuantity"]["value"]) for c in loads(again)["component"]] == [str(Decimal(t)) for t in texts]
    assert orjson.loads(again) == orjson.loads(body)  # the same numbers, whatever the parser


def test_decimal_like_text_inside_a_string_is_left_alone() -> None:
    """A string such as "1.50" makes the reader take the exact path: the values are still the same."""
    value = loads(b'{"a": 1.5, "b": [2, 3.25], "c": "text 1.50"}')
    assert value == {"a": 1.5, "b": [2, 3.25], "c": "text 1.50"}
    assert dumps(value) == b'{"a":1.5,"b":[2,3.25],"c":"text 1.50"}'


def test_a_stored_decimal_is_served_as_sent(client: TestClient) -> None:
    body = (b'{"resourceType":"Observation","status":"final","code":{"text":"glucose"},'
            b'"valueQuantity":{"value":5.40,"unit":"mmol/L"},"referenceRange":[{"low":{"value":3.90}}]}')
    created = client.post("/Observation", content=body, headers={"Content-Type": "application/fhir+json"})
    assert created.status_code == 201
    read = client.get(f"/Observation/{created.json()['id']}")
    assert b'"value":5.40' in read.content and b'"value":3.90' in read.content
    found = client.get("/Observation", params={"value-quantity": "5.40", "_summary": "data"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [created.json()["id"]]
    assert b'"value":5.40' in found.content
    assert client.get("/Observation", params={"value-quantity": "5.4"}).json()["total"] == 1
    assert client.get("/Observation", params={"value-quantity": "5.400"}).json()["total"] == 0
