"""The FHIR JSON adapter reads what tertiary hospitals send as strictly as the REST API reads a body: a key
twice, an escaped control character or a number a double cannot hold rejects its record, naming the
element, and the other records of the payload are kept."""

from __future__ import annotations

import orjson
import pytest

from adapters.base import Source
from adapters.fhir_json import FhirJsonAdapter

ADAPTER = FhirJsonAdapter()
SOURCE = Source("fhir", facility="79001")


def patient(rid: str) -> bytes:
    return orjson.dumps({"resourceType": "Patient", "id": rid, "name": [{"family": "Nguyễn", "given": ["An"]}]})


@pytest.mark.parametrize(("line", "where", "mentions"), [
    (b'{"resourceType":"Patient","id":"p2","gender":"male","gender":"female"}', "Patient.gender", "twice"),
    (b'{"resourceType":"Patient","id":"p2","name":[{"family":"Nguy\\u0000n"}]}', "Patient.name[0].family", "U+0000"),
    (b'{"resourceType":"Patient","id":"p2","multipleBirthInteger":1e-400}', "Patient.multipleBirthInteger",
     "out of range"),
], ids=["key-twice", "nul", "underflow"])
def test_a_refused_ndjson_line_is_rejected_alone_naming_the_element(line: bytes, where: str, mentions: str) -> None:
    mapping = ADAPTER.map(b"\n".join([patient("p1"), line, patient("p3")]), SOURCE, filename="Patient.ndjson")
    assert [r.key for r in mapping.records] == ["line 1: Patient/p1", "line 3: Patient/p3"]
    (problem,) = mapping.rejected
    assert (problem.record, problem.field) == ("line 2", where) and mentions in problem.message, problem


def test_a_bundle_with_a_key_twice_is_rejected_naming_the_element_not_read_as_lines() -> None:
    bundle = (b'{"resourceType": "Bundle", "type": "collection", "entry": [\n'
              b'  {"resource": {"resourceType": "Patient", "active": true, "active": false}}\n]}')
    mapping = ADAPTER.map(bundle, SOURCE, filename="bundle.json")
    assert mapping.records == []
    (problem,) = mapping.rejected
    assert (problem.record, problem.field) == ("bundle.json", "Bundle.entry[0].resource.active"), problem
