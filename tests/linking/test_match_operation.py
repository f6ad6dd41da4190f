"""``POST /Patient/$match`` (FHIR R4 patient-operation-match.html): the master patient index as an operation.

Records are written through the API (so the write path links them to masters as for any facility), then
matched over HTTP as a client would: as the hub's operator, who sees every record and master
(``callers.py``), unless a test says who else asks. A facility never sees a master: it is answered its own
best record of the person instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.linking.elements import is_master, master_of
from fhir_hub.main import create_app
from fhir_hub.matching import Comparison, Model
from fhir_hub.services.match import MATCH_GRADE, probability
from tests.conftest import as_, assert_outcome
from tests.linking.callers import operator

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def person(family: str, given: list[str], birth: str, *, gender: str = "female", cccd: str | None = None,
           phone: str | None = None, home: tuple[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": given}],
                           "birthDate": birth, "gender": gender}
    if cccd:
        out["identifier"] = [{"system": CCCD, "value": cccd}]
    if phone:
        out["telecom"] = [{"system": "phone", "value": phone}]
    if home:
        out["address"] = [{"line": list(home), "city": "Thành phố Hồ Chí Minh"}]
    return out


LAN = person("Nguyễn", ["Thị", "Lan"], "1956-04-12", cccd="079156001234", phone="0903123456")
# her record at another facility: no diacritics, no personal ID, only the birth year
LAN_ELSEWHERE = person("Nguyen", ["Thi", "Lan"], "1956", phone="0903123456")
# two different men with one of the city's commonest names and one birth date, in different wards: the write
# path keeps them apart, and a query with only the name and the date may be either
HUNG_1 = person("Nguyễn", ["Văn", "Hùng"], "1980-05-05", gender="male", home=("12 Lê Lợi", "Phường Bến Nghé"))
HUNG_2 = person("Nguyễn", ["Văn", "Hùng"], "1980-05-05", gender="male", home=("40 Hai Bà Trưng", "Phường Tân Định"))


@pytest.fixture(scope="module")
def world(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Settings,
                                                                                          dict[str, str]]]:
    """One database for the module (nothing below writes): Lan's two records (the second from facility
    79002), the two Hùngs."""
    settings = Settings(mongodb_uri=mongodb_uri, db_name=f"test_match_{id(tmp_path_factory)}",
                        data_dir=tmp_path_factory.mktemp("var"), validation_processes=0, ingest_processes=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ids = {}
        for name, body in (("lan", LAN), ("lan-elsewhere", LAN_ELSEWHERE), ("hung-1", HUNG_1), ("hung-2", HUNG_2)):
            system = as_(settings, facility="79002" if name == "lan-elsewhere" else "79001")
            response = client.put(f"/Patient/{name}", json={**body, "id": name}, headers={**FHIR, **system})
            assert response.status_code == 201, response.text
            linked = master_of(response.json())
            assert linked is not None
            ids[name] = linked[0]
        assert ids["lan"] == ids["lan-elsewhere"] and ids["hung-1"] != ids["hung-2"]
        yield client, settings, ids


def parameters(patient: dict[str, Any] | None, **more: Any) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": "resource", "resource": patient}] if patient is not None else []
    if "only_certain" in more:
        params.append({"name": "onlyCertainMatches", "valueBoolean": more["only_certain"]})
    if "count" in more:
        params.append({"name": "count", "valueInteger": more["count"]})
    return {"resourceType": "Parameters", "parameter": params}


def post(world: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    client, settings, _ids = world
    return client.post("/Patient/$match", json=body, headers={**FHIR, **(headers or operator(settings))})


def matches(response: Any) -> list[tuple[str, float, str]]:
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    out = []
    for item in bundle.get("entry", []):
        search = item["search"]
        assert search["mode"] == "match" and 0 <= search["score"] <= 1
        grade = [e["valueCode"] for e in search["extension"] if e["url"] == MATCH_GRADE]
        assert len(grade) == 1
        out.append((f"Patient/{item['resource']['id']}", search["score"], grade[0]))
    assert [m[1] for m in out] == sorted((m[1] for m in out), reverse=True), "ordered by score"
    assert bundle["total"] >= len(out)
    return out


def test_the_same_personal_id_is_a_certain_match_answered_as_the_master(world: Any) -> None:
    _client, _settings, ids = world
    found = matches(post(world, parameters(person("Nguyễn", ["Thị", "Lan"], "1956-04-12", cccd="079156001234"))))
    assert [(key, grade) for key, _score, grade in found] == [(ids["lan"], "certain")]
    assert found[0][1] >= 0.99


def test_two_sources_of_one_person_are_one_entry_the_master_with_the_best_score(world: Any) -> None:
    client, settings, ids = world
    response = post(world, parameters(LAN))  # matches both of her records
    found = matches(response)
    assert [key for key, _s, _g in found] == [ids["lan"]]
    master = response.json()["entry"][0]["resource"]
    assert is_master(master)
    assert {link["other"]["reference"] for link in master["link"]} == {"Patient/lan", "Patient/lan-elsewhere"}
    assert response.json()["entry"][0]["fullUrl"].endswith(f"/{ids['lan']}")
    # each facility, which sees neither the master nor the other's record, is answered its own record of her
    for code, own in (("79001", "Patient/lan"), ("79002", "Patient/lan-elsewhere")):
        answered = post(world, parameters(LAN), as_(settings, facility=code))
        assert [key for key, _s, _g in matches(answered)] == [own] and answered.json()["total"] == 1


def test_a_noisy_copy_without_personal_id_is_probable_or_possible(world: Any) -> None:
    _client, _settings, ids = world
    query = person("Nguyen", ["Thi", "Lan"], "1956", phone="+84903123456")
    found = matches(post(world, parameters(query)))
    assert [key for key, _s, _g in found] == [ids["lan"]]
    assert found[0][2] in ("probable", "possible") and 0.5 <= found[0][1] < 0.99


def test_only_certain_matches(world: Any) -> None:
    _client, _settings, ids = world
    noisy = person("Nguyen", ["Thi", "Lan"], "1956", phone="0903123456")
    assert matches(post(world, parameters(noisy, only_certain=True))) == []
    assert matches(post(world, parameters(noisy, only_certain=False)))
    exact = person("Nguyễn", ["Thị", "Lan"], "1956-04-12", cccd="079156001234")
    assert [k for k, _s, _g in matches(post(world, parameters(exact, only_certain=True)))] == [ids["lan"]]


def test_count_caps_the_entries_not_the_total(world: Any) -> None:
    _client, _settings, ids = world
    query = person("Nguyễn", ["Văn", "Hùng"], "1980-05-05", gender="male")
    both = post(world, parameters(query))
    assert {k for k, _s, grade in matches(both)} == {ids["hung-1"], ids["hung-2"]}
    assert {grade for _k, _s, grade in matches(both)} == {"possible"}  # a common name and a date: review
    one = post(world, parameters(query, count=1))
    assert len(matches(one)) == 1 and one.json()["total"] == 2
    assert matches(post(world, parameters(person("Lý", ["Thị", "Ngọc"], "2001-01-30")))) == []


def test_a_bare_patient_body_is_accepted_as_the_spec_example_posts_it(world: Any) -> None:
    _client, _settings, ids = world
    assert [k for k, _s, _g in matches(post(world, LAN))] == [ids["lan"]]


@pytest.mark.parametrize(("body", "named"), [
    (parameters(None), "resource"),
    (parameters({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}), "resource"),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}, "resource"),
    (parameters(LAN, count=0), "count"),
    (parameters(LAN, count="3"), "count"),
    (parameters(LAN, only_certain="yes"), "onlyCertainMatches"),
    (parameters({**LAN, "birthDate": "1956-13-45"}), "resource"),
    ({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": LAN},
                                                  {"name": "resource", "resource": LAN}]}, "resource"),
    ({"resourceType": "Parameters", "parameter": [{"name": "onlySingleMatch", "valueBoolean": True}]},
     "onlySingleMatch"),
])
def test_bad_input_is_a_400_naming_the_parameter(world: Any, body: dict[str, Any], named: str) -> None:
    outcome = assert_outcome(post(world, body), 400, "invalid")
    issue = outcome["issue"][0]
    assert named in issue["diagnostics"] and issue.get("expression"), issue


def test_a_caller_without_patient_search_gets_403(world: Any) -> None:
    _client, settings, _ids = world
    no_patients = as_(settings, scope="system/Observation.rs")
    assert_outcome(post(world, parameters(LAN), no_patients), 403, "forbidden")
    reads_only = as_(settings, scope="system/Patient.r")
    assert_outcome(post(world, parameters(LAN), reads_only), 403, "forbidden")


def test_a_resident_sees_only_their_own_records(world: Any) -> None:
    _client, settings, ids = world
    hung = as_(settings, "resident", patient="hung-1")
    query = person("Nguyễn", ["Văn", "Hùng"], "1980-05-05", gender="male")
    own = [k for k, _s, _g in matches(post(world, parameters(query), hung))]
    assert own == [ids["hung-1"]]  # the other Hùng matched as well for a hospital; not for this resident
    response = post(world, parameters(LAN), hung)
    assert matches(response) == [] and response.json()["total"] == 0


def test_the_operation_is_in_the_capability_statement(world: Any) -> None:
    client, _settings, _ids = world
    statement = client.get("/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"} in \
        patient["operation"]
    assert "resource" not in patient and "permission" not in patient  # tag keys, not capability flags


def test_score_rises_with_the_bits_and_never_contradicts_the_grade() -> None:
    model = Model.default()

    def score(bits: float, grade: Any, decision: Any = "link") -> float:
        return probability(Comparison(bits, decision, grade, "probabilistic", ()), model)

    assert score(model.lower, "possible", "review") == 0.5
    assert score(model.upper, "probable") == 0.9
    possible = [score(b, "possible", "review") for b in range(-10, 40)]
    probable = [score(b, "probable") for b in range(-10, 40)]
    certain = [score(b, "certain") for b in range(-10, 60)]
    for series in (possible, probable, certain):
        assert series == sorted(series)
    assert max(possible) <= min(probable) and max(probable) <= min(certain)
    assert all(0.5 <= s <= 1 for s in possible + probable + certain)


def test_without_linking_each_source_is_answered_itself(mongodb_uri: str, tmp_path: Any) -> None:
    settings = Settings(mongodb_uri=mongodb_uri, db_name=f"test_match_unlinked_{id(tmp_path)}", data_dir=tmp_path,
                        validation_processes=0, ingest_processes=0, link_patients=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name, body in (("lan", LAN), ("lan-elsewhere", LAN_ELSEWHERE)):
            response = client.put(f"/Patient/{name}", json={**body, "id": name}, headers={**FHIR, **as_(settings)})
            assert response.status_code == 201 and master_of(response.json()) is None
        found = matches(client.post("/Patient/$match", json=parameters(LAN), headers={**FHIR, **as_(settings)}))
        assert {key for key, _s, _g in found} == {"Patient/lan", "Patient/lan-elsewhere"}
        assert found[0][0] == "Patient/lan" and found[0][2] == "certain"  # the same record: the best score
