"""``Patient/{id}/$summary`` and ``Patient/$summary?identifier=`` (issue 19): an International Patient Summary
document built across a person's linked records, what the caller may not read left out before any section is
assembled. Shape against the IPS examples in ``../shared/fixtures/ips/`` (read from there, never copied), the
R4B models and the hub's own validator; status filters; contained references; Vietnamese and English
narratives. The read-path contract suite (tests/read_paths) checks nothing hidden shows through it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from fhir_hub.config import Settings
from fhir_hub.linking.elements import master_of
from fhir_hub.main import create_app
from fhir_hub.services import summary as summary_service
from profiles.ips import IPS_BUNDLE, IPS_COMPOSITION
from profiles.validation import ERROR, validate
from tests.conftest import as_, assert_outcome
from tests.consent.test_consent_reads import consent, facility_actor, give
from tests.linking.callers import operator

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"
LOINC = "http://loinc.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
IPS_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "ips"
REQUIRED = {"11450-4", "48765-2", "10160-0"}


def _put(client: TestClient, headers: dict[str, str], rtype: str, rid: str, **body: Any) -> None:
    answer = client.put(f"/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body}, headers={**FHIR, **headers})
    assert answer.status_code in (200, 201), answer.text


def _coded(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, **({"display": display} if display else {})}]}


def _condition(patient: str, code: str, text: str, clinical: str | None, verification: str = "confirmed"
               ) -> dict[str, Any]:
    """``clinical`` None: no clinicalStatus (an entered-in-error Condition must have none, invariant con-5)."""
    return {"subject": {"reference": f"Patient/{patient}"},
            "code": {**_coded("http://hl7.org/fhir/sid/icd-10", code), "text": text},
            **({"clinicalStatus": _coded(CLINICAL, clinical)} if clinical else {}),
            "verificationStatus": _coded(VERIFICATION, verification)}


def _observation(patient: str, category: str, code: str, status: str = "final", **more: Any) -> dict[str, Any]:
    return {"status": status, "category": [_coded(CATEGORY, category)], "code": _coded(LOINC, code, f"loinc {code}"),
            "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": "2025-03-15", **more}


def lan(client: TestClient, settings: Settings) -> str:
    """Bà Lan: her record at 79001 (lan-1) holds a little of every section, and the resources the filters
    must leave out; her record at 79002 (lan-2, linked by her CCCD) a resolved condition and a lab result.
    Returns her golden record's id."""
    person = {"name": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}], "birthDate": "1956-04-12", "gender": "female"}
    first, second = as_(settings, facility="79001"), as_(settings, facility="79002")
    _put(client, first, "Patient", "lan-1", **person, identifier=[{"system": CCCD, "value": "079156001234"},
                                                                  {"system": BHYT, "value": "HT2797923456789"}])
    _put(client, second, "Patient", "lan-2", **person, identifier=[{"system": CCCD, "value": "079156001234"}])
    _put(client, first, "Condition", "c-active", **_condition("lan-1", "I10", "Tăng huyết áp", "active"))
    _put(client, first, "Condition", "c-error", **_condition("lan-1", "E11", "Đái tháo đường nhầm", None,
                                                              "entered-in-error"))
    _put(client, second, "Condition", "c-resolved", **_condition("lan-2", "J18", "Viêm phổi", "resolved"))
    _put(client, first, "MedicationStatement", "ms-active", status="active",
         contained=[{"resourceType": "Medication", "id": "med1", "code": {"text": "Amlodipin 5 mg"}}],
         medicationReference={"reference": "#med1"}, subject={"reference": "Patient/lan-1"},
         dosage=[{"text": "1 viên mỗi sáng"}])
    _put(client, first, "MedicationStatement", "ms-stopped", status="stopped",
         medicationCodeableConcept={"text": "Thuốc đã ngừng"}, subject={"reference": "Patient/lan-1"})
    _put(client, first, "Immunization", "imm-1", status="completed", vaccineCode={"text": "Vắc xin cúm"},
         patient={"reference": "Patient/lan-1"}, occurrenceDateTime="2024-10-01")
    _put(client, first, "Observation", "o-vital", **_observation("lan-1", "vital-signs", "8480-6",
                                                                  valueQuantity={"value": 150, "unit": "mmHg"}))
    _put(client, first, "Observation", "o-prelim", **_observation("lan-1", "laboratory", "2345-7", "preliminary"))
    _put(client, second, "Observation", "o-lab", **_observation("lan-2", "laboratory", "2345-7",
                                                                 valueQuantity={"value": 6.1, "unit": "mmol/L"}))
    _put(client, first, "Observation", "o-preg", **_observation("lan-1", "social-history", "82810-3",
                                                                 valueCodeableConcept={"text": "Không mang thai"}))
    _put(client, first, "Procedure", "proc-1", status="completed", code={"text": "Nội soi dạ dày"},
         subject={"reference": "Patient/lan-1"}, performedDateTime="2023-06-01")
    _put(client, first, "Device", "dev-1", deviceName=[{"name": "Máy đo huyết áp", "type": "user-friendly-name"}])
    _put(client, first, "DeviceUseStatement", "dus-1", status="active", subject={"reference": "Patient/lan-1"},
         device={"reference": "Device/dev-1"})
    _put(client, first, "CarePlan", "cp-1", status="active", intent="plan", title="Theo dõi huyết áp",
         subject={"reference": "Patient/lan-1"})
    masters = [master_of(client.get(f"/Patient/{r}", headers=operator(settings)).json()) for r in ("lan-1", "lan-2")]
    assert masters[0] is not None and masters[1] is not None and masters[0][0] == masters[1][0]
    return masters[0][0].split("/", 1)[1]


def _sections(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = document["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def _section_keys(document: dict[str, Any], loinc: str) -> list[str]:
    base = document["entry"][2]["fullUrl"].rsplit("/", 2)[0]
    return [e["reference"].removeprefix(f"{base}/") for e in _sections(document)[loinc].get("entry", [])]


def _keys(document: dict[str, Any]) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in document["entry"]]


@pytest.fixture(scope="module")
def world(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Settings, str]]:
    settings = Settings(mongodb_uri=mongodb_uri, db_name=f"test_summary_{uuid.uuid4().hex[:10]}",
                        data_dir=tmp_path_factory.mktemp("var"), validation_processes=0, ingest_processes=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, settings, lan(client, settings)


def _lan_herself(settings: Settings) -> dict[str, str]:
    return as_(settings, "resident", patient="lan-1")


def _summary(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = client.get(url, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    return dict(answer.json())


def assert_meets_the_ips_profiles(document: dict[str, Any]) -> None:
    """The document claims the hub's IPS Bundle and Composition profiles and meets them (the hub's validator:
    base R4 checks, then each claimed profile), with no error."""
    composition = document["entry"][0]["resource"]
    assert document["meta"]["profile"] == [IPS_BUNDLE] and composition["meta"]["profile"] == [IPS_COMPOSITION]
    assert [i for i in validate(document) if i.severity == ERROR] == []
    assert [i for i in validate(composition) if i.severity == ERROR] == []


def test_the_hubs_ips_profiles_accept_the_ips_examples_and_refuse_a_missing_required_section() -> None:
    """The profiles are the IPS IG's rules, not the hub's habits: the IG's own examples meet them."""
    for name in ("bundle-minimal.json", "bundle-no-info-required-sections.json", "IPS-bundle-01.fasten-copy.json"):
        example = json.loads((IPS_FIXTURES / name).read_text(encoding="utf-8"))
        assert [i for i in validate(example, profile=IPS_BUNDLE) if i.severity == ERROR] == [], name
        composition = example["entry"][0]["resource"]
        assert [i for i in validate(composition, profile=IPS_COMPOSITION) if i.severity == ERROR] == [], name
    without = {**composition, "section": [s for s in composition["section"]
                                           if s["code"]["coding"][0]["code"] != "48765-2"]}
    assert any("hub-ips-comp-1" in i.message for i in validate(without, profile=IPS_COMPOSITION))
    silent = {**composition, "section": [{k: v for k, v in s.items() if k != "entry"} for s in composition["section"]]}
    assert any("hub-ips-sec-1" in i.message and i.severity == ERROR
               for i in validate(silent, profile=IPS_COMPOSITION))
    unordered = {**example, "entry": example["entry"][1:] + example["entry"][:1]}
    assert any("hub-ips-bdl-1" in i.message for i in validate(unordered, profile=IPS_BUNDLE))


def test_the_document_has_the_shape_of_the_ips_examples(world: tuple[TestClient, Settings, str]) -> None:
    """A document Bundle as the IPS examples are: identifier, timestamp, the Composition first (LOINC
    60591-5, subject, author, date, title, confidentiality, sections coded as theirs), then every resource it
    refers to once, each reference resolving to an entry; it parses with the R4B models and the hub's own
    validator finds no error in it."""
    client, settings, _master = world
    document = _summary(client, "/Patient/lan-1/$summary", _lan_herself(settings))
    example = json.loads((IPS_FIXTURES / "bundle-no-info-required-sections.json").read_text(encoding="utf-8"))
    assert document["type"] == example["type"] == "document"
    assert {"identifier", "timestamp"} <= document.keys() and document["identifier"]["value"].startswith("urn:uuid:")
    composition = document["entry"][0]["resource"]
    theirs = example["entry"][0]["resource"]
    assert composition["resourceType"] == theirs["resourceType"] == "Composition"
    assert composition["type"]["coding"][0]["code"] == theirs["type"]["coding"][0]["code"] == "60591-5"
    for element in ("status", "type", "subject", "date", "author", "title", "confidentiality", "section", "text"):
        assert element in composition and element in theirs, element
    assert composition["confidentiality"] == "N"
    full_urls = [e["fullUrl"] for e in document["entry"]]
    assert len(full_urls) == len(set(full_urls)) and len(_keys(document)) == len(set(_keys(document)))
    references = [composition["subject"]["reference"], *(a["reference"] for a in composition["author"]),
                  *(e["reference"] for s in composition["section"] for e in s.get("entry", []))]
    assert set(references) <= set(full_urls)
    assert document["entry"][1]["resource"]["resourceType"] == "Device"  # the hub, its author
    assert composition["subject"]["reference"].endswith("/Patient/lan-1")
    their_codes = {s["code"]["coding"][0]["code"] for s in theirs["section"]}
    assert REQUIRED <= their_codes and REQUIRED <= set(_sections(document))
    for section in composition["section"]:
        assert section["text"]["status"] == "generated"
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml"')
        assert ("entry" in section) != ("emptyReason" in section)  # cmp-2: an emptyReason only when empty
    Bundle.model_validate(document)  # the R4B models
    assert_meets_the_ips_profiles(document)


def test_every_section_with_data_is_there_and_the_status_filters_hold(world: tuple[TestClient, Settings, str]
                                                                      ) -> None:
    """Across both of Lan's records (she reads her own): active problems, past illness for the resolved one,
    the active medication, results without the preliminary one; what is entered in error, stopped or
    preliminary is in no section and no entry."""
    client, settings, _master = world
    document = _summary(client, "/Patient/lan-1/$summary", _lan_herself(settings))
    sections = _sections(document)
    assert set(sections) == {"11450-4", "48765-2", "10160-0", "11369-6", "30954-2", "8716-3", "47519-4", "46264-8",
                             "11348-0", "10162-6", "18776-5"}
    assert _section_keys(document, "11450-4") == ["Condition/c-active"]
    assert _section_keys(document, "11348-0") == ["Condition/c-resolved"]  # resolved: past illness
    assert _section_keys(document, "10160-0") == ["MedicationStatement/ms-active"]
    assert _section_keys(document, "30954-2") == ["Observation/o-lab"]  # from her other record, not preliminary
    assert _section_keys(document, "8716-3") == ["Observation/o-vital"]
    assert _section_keys(document, "10162-6") == ["Observation/o-preg"]
    assert _section_keys(document, "46264-8") == ["DeviceUseStatement/dus-1"]
    assert _section_keys(document, "18776-5") == ["CarePlan/cp-1"]
    keys = _keys(document)
    assert {"Patient/lan-1", "Patient/lan-2"} <= set(keys)  # what the entries refer to
    assert "Device/dev-1" not in keys  # in nobody's compartment: a resident's token does not read it
    for left_out in ("Condition/c-error", "Observation/o-prelim", "MedicationStatement/ms-stopped"):
        assert left_out not in keys and left_out.split("/")[1] not in json.dumps(document)
    assert "emptyReason" in sections["48765-2"] and "entry" not in sections["48765-2"]  # no allergies known


def test_a_contained_medication_survives_and_is_named(world: tuple[TestClient, Settings, str]) -> None:
    """The MedicationStatement is served as stored, its ``#med1`` reference resolving in its own contained
    Medication, which the narrative names."""
    client, settings, _master = world
    document = _summary(client, "/Patient/lan-1/$summary", _lan_herself(settings))
    (statement,) = [e["resource"] for e in document["entry"] if e["resource"]["id"] == "ms-active"]
    assert statement["medicationReference"] == {"reference": "#med1"}
    assert [c["id"] for c in statement["contained"]] == ["med1"]
    assert "Amlodipin 5 mg" in _sections(document)["10160-0"]["text"]["div"]


def test_required_sections_are_there_when_nothing_is_known(world: tuple[TestClient, Settings, str]) -> None:
    client, settings, _master = world
    _put(client, as_(settings, facility="79001"), "Patient", "empty-1", name=[{"family": "Phạm"}],
         birthDate="1990-01-01", gender="male")
    document = _summary(client, "/Patient/empty-1/$summary", as_(settings, facility="79001"))
    sections = _sections(document)
    assert set(sections) == REQUIRED  # the others only with data
    for section in sections.values():
        assert "entry" not in section
        assert section["emptyReason"]["coding"][0] == {
            "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason", "code": "unavailable",
            "display": "Unavailable"}
        assert "Không có thông tin" in section["text"]["div"]
    assert _keys(document)[2:] == ["Patient/empty-1"]
    assert_meets_the_ips_profiles(document)


@pytest.mark.parametrize(("accept", "lang"), [(None, "vi"), ("en", "en"), ("en-GB,en;q=0.9", "en"),
                                              ("fr, vi;q=0.1, en;q=0.05", "vi"), ("*", "vi"), ("vi;q=0, *", "en"),
                                              ("de", "vi"), ("EN-us;q=0.8, vi;q=0.7", "en")])
def test_vietnamese_by_default_english_when_asked(world: tuple[TestClient, Settings, str], accept: str | None,
                                                  lang: str) -> None:
    client, settings, _master = world
    headers = {**_lan_herself(settings), **({"Accept-Language": accept} if accept else {})}
    answer = client.get("/Patient/lan-1/$summary", headers=headers)
    assert answer.status_code == 200 and answer.headers["content-language"] == lang
    document = answer.json()
    composition = document["entry"][0]["resource"]
    assert document["language"] == composition["language"] == lang
    problems = _sections(document)["11450-4"]
    assert problems["title"] == {"vi": "Các vấn đề sức khỏe hiện tại", "en": "Active Problems"}[lang]
    assert f'lang="{lang}"' in problems["text"]["div"]
    assert ("Đang hoạt động" if lang == "vi" else "Active") in problems["text"]["div"]
    assert ("Không có thông tin" if lang == "vi" else "no information") in _sections(document)["48765-2"]["text"]["div"]


def test_by_personal_id_or_insurance_number(world: tuple[TestClient, Settings, str]) -> None:
    """A clinician asks by CCCD or BHYT number: the one person they name, among the Patients the caller may
    read; unknown is 404, several people 422 ``multiple-matches``."""
    client, settings, _master = world
    at = as_(settings, facility="79001")
    for identifier in (f"{CCCD}|079156001234", f"{BHYT}|HT2797923456789"):
        document = _summary(client, f"/Patient/$summary?identifier={identifier}", at)
        assert document["entry"][0]["resource"]["subject"]["reference"].endswith("/Patient/lan-1")
        assert _section_keys(document, "11450-4") == ["Condition/c-active"]
    assert_outcome(client.get(f"/Patient/$summary?identifier={CCCD}|000000000000", headers=at), 404, "not-found")
    assert_outcome(client.get("/Patient/$summary", headers=at), 400)
    assert_outcome(client.get("/Patient/$summary?identifier=novalue", headers=at), 400)
    for rid, family, birth in (("twin-a", "Đỗ", "1970-01-01"), ("twin-b", "Lý", "1999-09-09")):
        _put(client, at, "Patient", rid, name=[{"family": family}], birthDate=birth, gender="male",
             identifier=[{"system": "urn:oid:1.2.3", "value": "shared-99"}])
    assert_outcome(client.get("/Patient/$summary?identifier=urn:oid:1.2.3|shared-99", headers=at), 422,
                   "multiple-matches")


def test_a_resident_reads_their_own_and_no_one_elses(world: tuple[TestClient, Settings, str]) -> None:
    """Lan's token: her golden record's summary (both records' data); another person's answers exactly as a
    patient never recorded, by id or by their personal ID."""
    client, settings, master = world
    herself = _lan_herself(settings)
    document = _summary(client, f"/Patient/{master}/$summary", herself)
    assert document["entry"][0]["resource"]["subject"]["reference"].endswith(f"/Patient/{master}")
    assert _section_keys(document, "11348-0") == ["Condition/c-resolved"]
    assert _section_keys(document, "11450-4") == ["Condition/c-active"]
    _put(client, as_(settings, facility="79001"), "Patient", "other-1", name=[{"family": "Trương"}],
         birthDate="1981-01-01", gender="male", identifier=[{"system": CCCD, "value": "079181009999"}])
    _put(client, as_(settings, facility="79001"), "Condition", "other-c", **_condition("other-1", "I10", "x", "active"))
    assert client.get("/Patient/other-1/$summary", headers=as_(settings, facility="79001")).status_code == 200
    for asked, absent in (("/Patient/other-1/$summary", "/Patient/never-1/$summary"),
                          (f"/Patient/$summary?identifier={CCCD}|079181009999",
                           f"/Patient/$summary?identifier={CCCD}|079181000000")):
        answer, nobody = client.get(asked, headers=herself), client.get(absent, headers=herself)
        assert answer.status_code == nobody.status_code == 404
        assert answer.text.replace("other-1", "never-1").replace("079181009999", "079181000000") == nobody.text


def test_a_facility_sees_another_facilitys_records_only_under_consent(settings: Settings) -> None:
    """79001 without a consent: its own records of Lan only (her 79002 lab result and past pneumonia are in
    no section, entry or narrative); once Lan permits 79001, the next summary has them."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        lan(client, settings)
        at = as_(settings, "clinician", facility="79001")
        before = _summary(client, "/Patient/lan-1/$summary", at)
        text = json.dumps(before, ensure_ascii=False)
        assert "o-lab" not in text and "c-resolved" not in text and "Viêm phổi" not in text and "lan-2" not in text
        assert "11348-0" not in _sections(before) and "30954-2" not in _sections(before)
        assert "Device/dev-1" in _keys(before)  # what its entries refer to, as 79001 may read it
        assert "Máy đo huyết áp" in _sections(before)["46264-8"]["text"]["div"]
        give(client, _lan_herself(settings), {**consent(actor=[facility_actor("79001")]),
                                              "patient": {"reference": "Patient/lan-1"}})
        after = _summary(client, "/Patient/lan-1/$summary", at)
        assert _section_keys(after, "11348-0") == ["Condition/c-resolved"]
        assert _section_keys(after, "30954-2") == ["Observation/o-lab"]


def test_listed_in_the_capability_statement_and_strict_parameters(world: tuple[TestClient, Settings, str]) -> None:
    client, settings, _master = world
    patient = next(r for r in client.get("/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "summary", "definition": "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"} in \
        patient["operation"]
    at = as_(settings, facility="79001")
    assert client.get("/Patient/lan-1/$summary?foo=1", headers=at).status_code == 200
    assert_outcome(client.get("/Patient/lan-1/$summary?foo=1", headers={**at, "Prefer": "handling=strict"}), 400,
                   "not-supported")
    assert_outcome(client.get("/Patient/nobody/$summary", headers=at), 404, "not-found")


def test_the_person_is_read_page_after_page(world: tuple[TestClient, Settings, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A person with more resources than a page: the summary follows the pages, and misses nothing."""
    client, settings, _master = world
    whole = _summary(client, "/Patient/lan-1/$summary", _lan_herself(settings))
    monkeypatch.setattr(summary_service, "_PAGE", 2)
    paged = _summary(client, "/Patient/lan-1/$summary", _lan_herself(settings))
    assert _keys(paged)[2:] == _keys(whole)[2:]
    assert [_section_keys(paged, code) for code in _sections(paged)] == [
        _section_keys(whole, code) for code in _sections(whole)]
