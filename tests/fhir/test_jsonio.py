"""FHIR JSON keeps decimals exactly as written: their precision is part of the value (R4 datatypes#decimal).
Request bodies are read strictly: no control characters in strings, no key twice, no number a double
cannot hold; each refusal names the element."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.errors import BadRequest
from fhir_hub.fhir.jsonio import dumps, loads, parse_json

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


# ------------------------------------------------------------------------------------- strict request bodies
def refusal(body: bytes) -> tuple[str, tuple[str, ...]]:
    """What parse_json says about a body it must refuse: its message and the element it names."""
    with pytest.raises(BadRequest) as caught:
        parse_json(body)
    return caught.value.diagnostics, caught.value.issues[0].expression


CONTROL = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_an_escaped_control_character_in_a_string_is_refused_naming_the_element(char: str) -> None:
    escaped = orjson.dumps(char)[1:-1]  # \u0000 ... and the short forms \b, \f
    message, where = refusal(b'{"resourceType":"Patient","name":[{"given":["An","V' + escaped + b'n"]}]}')
    assert where == ("Patient.name[0].given[1]",) and f"U+{ord(char):04X}" in message, message
    assert refusal(b'{"resourceType":"Patient","x' + escaped + b'":1}')[1] == (f"Patient.x\\u{ord(char):04x}",)
    # tab, CR and LF are allowed; so is a backslash followed by "u0000" (a written backslash, not a NUL)
    assert parse_json(b'{"text":"a\\tb\\r\\nc\\\\u0000"}') == {"text": "a\tb\r\nc\\u0000"}
    assert loads(b'{"s":"\\u0000"}') == {"s": "\x00"}  # stored JSON (the hot path) is read without the checks
    assert "surrogate" in refusal(b'{"s":"\\ud800x"}')[0]  # still refused, as orjson did
    assert parse_json(b'{"s":"\\ud83d\\ude00"}') == {"s": "\U0001F600"}  # an escaped pair is one character


@pytest.mark.parametrize(("body", "where"), [
    (b'{"resourceType":"Patient","gender":"male","gender":"female"}', "Patient.gender"),
    (b'{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Patient"},'
     b'"resource":{"resourceType":"Patient","active":true,"active":false}}]}', "Bundle.entry[0].resource.active"),
    (b'[{"op":"replace","path":"/gender","value":"male","value":"female"}]', "$[0].value"),
])
def test_a_key_sent_twice_is_refused_not_last_wins(body: bytes, where: str) -> None:
    message, named = refusal(body)
    assert named == (where,) and "twice" in message, message
    assert loads(b'{"a":1,"a":2}') == {"a": 2}  # stored JSON (the hot path) is read without the checks


@pytest.mark.parametrize("number", ["1e-400", "-1e-400", "2.5e-320", "0." + "0" * 400 + "1", "1e400", "-1E400",
                                    "1" + "0" * 400, "99999999999999999999", "-9223372036854775809"])
def test_a_number_a_double_cannot_hold_is_refused_not_rounded(number: str) -> None:
    body = b'{"resourceType":"Observation","valueQuantity":{"value":' + number.encode() + b'}}'
    message, where = refusal(body)
    assert where == ("Observation.valueQuantity.value",) and "out of range" in message, message
    for fine in ("0e400", "-0.0e-999", "9223372036854775807", "-9223372036854775808", "1.7976931348623157e308",
                 "2.2250738585072014e-308", "5.40"):
        assert Decimal(str(parse_json(b'{"v":' + fine.encode() + b"}")["v"])) == Decimal(fine)  # kept exactly
    assert refusal(b'{"v":[1,NaN]}') == ("The request body is refused: $.v[1]: NaN is not a JSON number", ("$.v[1]",))


KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6).filter(lambda k: k != "resourceType")
TREE = st.recursive(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=CONTROL), max_size=8)
    | st.integers(-(2**63), 2**63 - 1) | st.booleans() | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=3), max_leaves=15)


def locations(node: Any, path: str) -> list[tuple[str, str]]:
    """(path, kind) of every string value and every key: where a fault can be put."""
    if isinstance(node, dict):
        return [loc for key, value in node.items() for loc in [(f"{path}.{key}", "key"),
                                                                *locations(value, f"{path}.{key}")]]
    if isinstance(node, list):
        return [loc for i, value in enumerate(node) for loc in locations(value, f"{path}[{i}]")]
    return [(path, "string")] if isinstance(node, str) else []


def written(node: Any, path: str, fault: tuple[str, str] | None, control: str) -> str:
    """``node`` as JSON text, with the fault put at its place: a key written twice, or a control character
    escaped at the end of a string."""
    if isinstance(node, dict):
        pairs = []
        for key, value in node.items():
            pair = f"{json.dumps(key)}:{written(value, f'{path}.{key}', fault, control)}"
            pairs += [pair, pair] if fault == (f"{path}.{key}", "key") else [pair]
        return "{" + ",".join(pairs) + "}"
    if isinstance(node, list):
        return "[" + ",".join(written(v, f"{path}[{i}]", fault, control) for i, v in enumerate(node)) + "]"
    if fault == (path, "string"):
        return json.dumps(node)[:-1] + control + '"'
    return json.dumps(node)


@given(st.dictionaries(KEY, TREE, min_size=1, max_size=4), st.randoms(use_true_random=False),
       st.sampled_from(CONTROL), st.booleans())
def test_a_control_character_or_a_repeated_key_anywhere_is_refused_at_its_path(
        tree: dict[str, Any], rng: random.Random, char: str, upper: bool) -> None:
    document = {"resourceType": "Patient", **tree}
    assert parse_json(written(document, "Patient", None, "").encode()) == document  # no fault: read as it is
    fault = rng.choice([loc for loc in locations(document, "Patient") if loc[0] != "Patient.resourceType"])
    escape = json.dumps(char)[1:-1]  # \u0000 ... or the short forms \b, \f
    if upper and escape.startswith("\\u"):
        escape = "\\u" + escape[2:].upper()  # \u001F is the same character as \u001f
    message, where = refusal(written(document, "Patient", fault, escape).encode())
    assert where == (fault[0],), message
