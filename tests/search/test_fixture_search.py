"""Search over real shared fixtures, every expected answer computed from the fixture files in plain Python.

Why: the search code is checked against data nobody wrote for it (Synthea, the microsoft/fhir-server search
seeds, HL7 examples), and the expected ids of each query come from reading that JSON with the small helpers
below, written from FHIR R4 search.html, never from the server's answer nor from ``fhir_hub.search``. So a
wrong index entry, prefix, modifier, chain, sort or page shows up as a difference of id sets or id lists.

Data, loaded once per module with ``PUT /{type}/{id}`` (Bundles are not implemented yet), in this order:

1. ``R4/Bundle-ChainingSortAndSearchValidation.json``: its 14 PractitionerRole and 15 HealthcareService.
2. ``Normative/SearchDataBatch.json``: Patients, Practitioners, Encounters, Observations, DiagnosticReports.
   Entries without an id (POST) get ``sdb-<entry index>``. The AuditEvent is skipped (AuditEvents cannot be
   written through the API). Two entries give a 0..* element as a bare object (``generalPractitioner``,
   ``result``); R4 JSON requires an array and the hub rightly refuses them, so they are wrapped in a list.
3. Five Normative Observations, for quantity, composite and ``_tag``: BloodPressure, BloodGlucose, Weight
   (no id in the file: ``weight``), ObservationWithEyeColor and the tagged HL7 observation-example.
4. All of ``synthea-bulk-ndjson-10pt`` (3,889 resources), each NDJSON line sent as it is. Measured here at
   35 to 45 s one PUT at a time, under the minute that would have called for a subset, so nothing is left
   out and every expectation covers the whole data set. The instant between groups 3 and 4 is recorded for
   ``_lastUpdated``.

Semantics assumed by the helpers (FHIR R4 search.html, as the hub documents them): strings match case-,
accent- and diacritic-insensitively at the start of each value (``đ`` -> ``d``); zone-less dates are UTC
and every date is the range of its precision; a Period is [start, end] with open ends unbounded; decimals
are ranges of their implied precision; date ``_sort`` orders ascending by the start of the range and
descending by its end (R5 spells this out; R4 leaves it open), missing values last.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from tests.conftest import fixture_path, read_fixture_json

Resource = dict[str, Any]
FHIR_JSON = {"Content-Type": "application/fhir+json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MS = "ms-fhir-server-testfiles"
SYNTHEA = "synthea-bulk-ndjson-10pt"
SYNTHEA_TYPES = ("Organization", "Location", "Practitioner", "PractitionerRole", "Patient", "Encounter", "Condition",
                 "MedicationRequest", "Immunization", "AllergyIntolerance", "Device")
NORMATIVE_OBSERVATIONS = (("BloodPressure.json", None), ("BloodGlucose.json", None), ("Weight.json", "weight"),
                          ("ObservationWithEyeColor.json", None), ("observation-example.json", None))
ONE_ITEM_LISTS = {"Patient": ("generalPractitioner",), "DiagnosticReport": ("result",)}
BASE = "http://testserver"  # the TestClient's base URL: absolute references to it are references to the hub

# Synthea patients the queries name (all other ids in expectations come from the fixture)
P_MARINE = "79a66c97-6131-3213-f3c9-4606946ab056"  # Upton904, born 1927, 708 encounters
P_SUMIKO = "129c6ac7-8d06-89de-ad63-0204a93e76c3"  # Medhurst46 (maiden Cummerata161), born 1927
P_ELISA = "a5cb8ce9-cec6-6b23-0990-cbaf753578a4"  # encounters late in the evening at -05:00
P_CORRIN = "ca15b832-01e4-41dd-6a52-97bd3e5510cb"
P_DEVIN = "3af3708d-41f1-cd80-f3dd-ec5ac76072bf"  # Cole117, born 1960, a few of everything
# Bundle-ChainingSortAndSearchValidation resources the queries name
HS_APPOINTMENTS = "7f6b44f8-97e1-4e8b-af36-c5edae08c7ea"
LOCATION_TWICE = "3138da4e-08fe-346f-bb53-2d8b9e4db74f"  # listed twice in one PractitionerRole
LOCATION_CRITICAL_1 = "f51cef48-5832-4675-993d-30a4e7dcc5f1"
CVX = "http://hl7.org/fhir/sid/cvx"
SCT = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
HTEST = "http://terminology.hl7.org/CodeSystem/v3-ActReason|HTEST"


# ------------------------------------------------------------------------------------------ the fixture data
@dataclass
class Data:
    """Every loaded resource by type and id, in load order, exactly as sent."""

    by_type: dict[str, dict[str, Resource]] = field(default_factory=dict)

    def add(self, resource: Resource) -> None:
        self.by_type.setdefault(resource["resourceType"], {})[resource["id"]] = resource

    def all(self, rtype: str) -> list[Resource]:
        return list(self.by_type.get(rtype, {}).values())

    def get(self, reference: str) -> Resource | None:
        rtype, _, rid = reference.partition("/")
        return self.by_type.get(rtype, {}).get(rid)

    def ids(self, rtype: str, keep: Callable[[Resource], bool]) -> set[str]:
        return {r["id"] for r in self.all(rtype) if keep(r)}

    def resolve(self, value: Any) -> list[Resource]:
        """The loaded resources that literal references in ``value`` point at."""
        return [found for ref in sorted(refs(value)) if (found := self.get(ref)) is not None]

    def has(self, rtype: str, source: str, path: Callable[[Resource], Any], keep: Callable[[Resource], bool]
            ) -> set[str]:
        """Ids of ``rtype`` resources that a ``source`` resource accepted by ``keep`` references via ``path``."""
        wanted = {ref for s in self.all(source) if keep(s) for ref in refs(path(s))}
        return {rid for rid in self.by_type.get(rtype, {}) if f"{rtype}/{rid}" in wanted}


def _json(*parts: str) -> Any:
    return json.loads(read_fixture_json(*parts))


def _as_r4_json(resource: Resource) -> Resource:
    """SearchDataBatch gives two 0..* elements as a bare object; R4 JSON needs an array."""
    fixed = dict(resource)
    for name in ONE_ITEM_LISTS.get(resource["resourceType"], ()):
        if isinstance(fixed.get(name), dict):
            fixed[name] = [fixed[name]]
    return fixed


def ms_resources() -> list[Resource]:
    """Groups 1 to 3 of the module docstring, in load order."""
    chaining = _json(MS, "R4", "Bundle-ChainingSortAndSearchValidation.json")
    found = [entry["resource"] for entry in chaining["entry"]]
    batch = _json(MS, "Normative", "SearchDataBatch.json")
    for index, entry in enumerate(batch["entry"]):
        resource = entry["resource"]
        if resource["resourceType"] != "AuditEvent":
            found.append(_as_r4_json({**resource, "id": resource.get("id") or f"sdb-{index}"}))
    for name, given_id in NORMATIVE_OBSERVATIONS:
        resource = _json(MS, "Normative", name)
        found.append({**resource, "id": resource.get("id") or given_id})
    return found


@dataclass
class Loaded:
    client: TestClient
    data: Data
    between: str  # an instant after groups 1-3 were written and before Synthea was


def _put(client: TestClient, resource: Resource, body: bytes) -> None:
    response = client.put(f"/{resource['resourceType']}/{resource['id']}", content=body, headers=FHIR_JSON)
    assert response.status_code in (200, 201), f"{resource['resourceType']}/{resource['id']}: {response.text}"


@pytest.fixture(scope="module")
def loaded(module_client: TestClient) -> Loaded:
    """The whole data set in one fresh database, shared by every test of the module (read-only)."""
    data = Data()
    for resource in ms_resources():
        _put(module_client, resource, json.dumps(resource).encode())
        data.add(resource)
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    for rtype in SYNTHEA_TYPES:
        for line in fixture_path(SYNTHEA, f"{rtype}.000.ndjson").read_bytes().splitlines():
            if line.strip():
                resource = json.loads(line)
                _put(module_client, resource, line)
                data.add(resource)
    return Loaded(module_client, data, between.isoformat())


# ------------------------------------------------------------------------ the expectations' own matching
def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


_NO_DECOMPOSITION = str.maketrans({"đ": "d", "Đ": "D"})


def fold(text: str) -> str:
    """Case-, accent- and diacritic-free text (``đ`` has no Unicode decomposition, so it is mapped)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_NO_DECOMPOSITION))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


def starts(values: Iterable[str], query: str) -> bool:
    return any(fold(value).startswith(fold(query)) for value in values)


def contains(values: Iterable[str], query: str) -> bool:
    return any(fold(query) in fold(value) for value in values)


def name_parts(names: Any) -> list[str]:
    """The strings of HumanNames a ``name`` search looks at: text, family, given, prefix, suffix."""
    parts: list[str] = []
    for name in as_list(names):
        parts += [name.get("text"), name.get("family"), *name.get("given", []), *name.get("prefix", []),
                  *name.get("suffix", [])]
    return [p for p in parts if p]


def address_parts(addresses: Any) -> list[str]:
    parts: list[str] = []
    for address in as_list(addresses):
        parts += [address.get("text"), *address.get("line", []), address.get("city"), address.get("district"),
                  address.get("state"), address.get("postalCode"), address.get("country")]
    return [p for p in parts if p]


def codings(value: Any) -> list[tuple[str | None, str]]:
    """(system, code) of CodeableConcepts, Codings, Identifiers, codes and booleans."""
    pairs: list[tuple[str | None, str]] = []
    for item in as_list(value):
        if isinstance(item, bool):
            pairs.append((None, "true" if item else "false"))
        elif isinstance(item, str):
            pairs.append((None, item))
        elif "coding" in item:
            pairs += codings(item["coding"])
        elif "code" in item:
            pairs.append((item.get("system"), item["code"]))
        elif "value" in item:
            pairs.append((item.get("system"), item["value"]))
    return pairs


def token(value: Any, query: str) -> bool:
    """``system|code``, ``|code`` (no system), ``system|`` (any code) or ``code`` (any system)."""
    pairs = codings(value)
    if "|" not in query:
        return any(code == query for _, code in pairs)
    system, code = query.split("|", 1)
    if not code:
        return any(s == system for s, _ in pairs)
    if not system:
        return any(s is None and c == code for s, c in pairs)
    return (system, code) in pairs


def token_text(value: Any, query: str) -> bool:
    """``:text``: a string search over CodeableConcept.text, Coding.display and Identifier.type's text."""
    texts: list[str] = []
    for item in as_list(value):
        concept = item.get("type", {}) if "value" in item and "type" in item else item
        texts += [concept.get("text"), concept.get("display")]
        texts += [coding.get("display") for coding in concept.get("coding", [])]
    return starts([t for t in texts if t], query)


def of_type(identifiers: Any, query: str) -> bool:
    """``:of-type=type-system|type-code|value``."""
    system, code, value = query.split("|", 2)
    return any(i.get("value") == value and (system, code) in codings(i.get("type")) for i in as_list(identifiers))


_LITERAL = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def refs(value: Any) -> set[str]:
    """``Type/id`` of literal references (Synthea's conditional and logical references point at nothing)."""
    return {r["reference"] for r in as_list(value)
            if isinstance(r, dict) and _LITERAL.fullmatch(r.get("reference", ""))}


def refers(value: Any, target: str) -> bool:
    return target in refs(value)


_DATE = re.compile(r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2}):(?P<M>\d{2})"
                   r"(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?")
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")  # the hub's zone for values without one (FHIR_HUB_TIME_ZONE's default)
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def date_range(text: str) -> tuple[datetime, datetime]:
    """[start, end) of a FHIR date, dateTime or instant at its own precision; no zone means the hub's zone."""
    m = _DATE.fullmatch(text)
    assert m is not None, text
    year = int(m["y"])
    if m["m"] is None:
        return datetime(year, 1, 1, tzinfo=LOCAL), datetime(year + 1, 1, 1, tzinfo=LOCAL)
    month = int(m["m"])
    if m["d"] is None:
        return datetime(year, month, 1, tzinfo=LOCAL), datetime(year + month // 12, month % 12 + 1, 1, tzinfo=LOCAL)
    if m["H"] is None:
        day = datetime(year, month, int(m["d"]), tzinfo=LOCAL)
        return day, day + timedelta(days=1)
    zone: tzinfo = LOCAL if m["tz"] is None else UTC
    if m["tz"] not in (None, "Z"):
        offset = timedelta(hours=int(m["tz"][1:3]), minutes=int(m["tz"][4:6]))
        zone = timezone(offset if m["tz"][0] == "+" else -offset)
    digits = (m["f"] or ".")[1:]
    start = datetime(year, month, int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"] or 0),
                     int((digits + "000000")[:6]), tzinfo=zone)
    if digits:
        step = timedelta(microseconds=10 ** max(0, 6 - len(digits)))
    else:
        step = timedelta(seconds=1) if m["S"] else timedelta(minutes=1)
    return start.astimezone(UTC), (start + step).astimezone(UTC)


def when(value: Any) -> tuple[datetime, datetime] | None:
    """The range of a date-like string or of a Period (open ends unbounded); None for anything else."""
    if isinstance(value, str):
        return date_range(value)
    if isinstance(value, dict) and ("start" in value or "end" in value):
        return (date_range(value["start"])[0] if value.get("start") else EARLIEST,
                date_range(value["end"])[1] if value.get("end") else LATEST)
    return None


def _prefixed(query: str) -> tuple[str, str]:
    return (query[:2], query[2:]) if query[:2].isalpha() else ("eq", query)


def date_matches(value: Any, query: str) -> bool:
    """The R4 prefixes between the resource's range and the search value's range (both half-open here)."""
    found = when(value)
    if found is None:
        return False
    prefix, text = _prefixed(query)
    low, high = date_range(text)
    start, end = found
    eq = low <= start and end <= high
    return {"eq": eq, "ne": not eq, "gt": end > high, "lt": start < low, "ge": end > high or eq,
            "le": start < low or eq, "sa": start >= high, "eb": end <= low}[prefix]


def decimal_range(number: float | int | str) -> tuple[Decimal, Decimal]:
    """A decimal's implied precision range: 100 is [99.5, 100.5], 6.3 is [6.25, 6.35]."""
    value = Decimal(str(number))
    half = Decimal(5).scaleb(int(value.as_tuple().exponent) - 1)
    return value - half, value + half


def quantity_matches(quantity: Any, query: str) -> bool:
    """``[prefix]number``, ``number||code`` (code or unit), ``number|system|code``."""
    if not isinstance(quantity, dict) or "value" not in quantity:
        return False
    number, system, code = (query.split("|") + ["", ""])[:3]
    if system and (quantity.get("system"), quantity.get("code")) != (system, code):
        return False
    if not system and code and code not in (quantity.get("code"), quantity.get("unit")):
        return False
    prefix, text = _prefixed(number)
    low, high = decimal_range(text)
    start, end = decimal_range(quantity["value"])
    eq = low <= start and end <= high
    value, searched = Decimal(str(quantity["value"])), Decimal(text)  # gt, lt, ge, le: "than exactly" the value
    return {"eq": eq, "ne": not eq, "gt": value > searched, "lt": value < searched, "ge": value >= searched,
            "le": value <= searched, "sa": start > high, "eb": end < low}[prefix]


def code_value_quantity(items: Iterable[Resource], query: str) -> bool:
    """A composite ``code$quantity``: both halves on the same item (the Observation or one component)."""
    head, _, tail = query.partition("$")
    return any(token(item.get("code"), head) and quantity_matches(item.get("valueQuantity"), tail) for item in items)


def order(resources: Iterable[Resource], *keys: tuple[Callable[[Resource], Any], bool]) -> list[str]:
    """Ids sorted by several (key, descending) pairs; a key of None (no value) sorts last either way."""
    result = list(resources)
    for key, descending in reversed(keys):
        present = [r for r in result if key(r) is not None]
        result = sorted(present, key=key, reverse=descending) + [r for r in result if key(r) is None]
    return [r["id"] for r in result]


def rid(resource: Resource) -> str:
    return str(resource["id"])


def birth_start(resource: Resource) -> datetime | None:
    return date_range(resource["birthDate"])[0] if resource.get("birthDate") else None


# --------------------------------------------------------------------------------------- the searching
@dataclass
class Found:
    bundles: list[dict[str, Any]]

    def entries(self, mode: str) -> list[dict[str, Any]]:
        return [e for b in self.bundles for e in b.get("entry", []) if e.get("search", {}).get("mode") == mode]

    def refs(self, mode: str = "match") -> list[str]:
        return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in self.entries(mode)]

    def ids(self) -> list[str]:
        return [e["resource"]["id"] for e in self.entries("match")]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def search(client: TestClient, url: str, *, form: list[tuple[str, str]] | None = None,
           headers: dict[str, str] | None = None) -> Found:
    """Every page of a search (following ``next`` links), each checked to be a searchset."""
    if form is None:
        response = client.get(url, headers=headers)
    else:
        response = client.post(url, content=urlencode(form), headers={**FORM, **(headers or {})})
    bundles: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:500]}"
        bundle = response.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        bundles.append(bundle)
        following = link(bundle, "next")
        if following is None:
            return Found(bundles)
        assert len(bundles) < 200, f"{url}: paging does not end"
        response = client.get(following, headers=headers)


# ------------------------------------------------------------------------------------ the query tables
Expect = Callable[[Data], set[str]]


@dataclass(frozen=True)
class Case:
    query: str
    expect: Expect
    may_be_empty: bool = False  # an expectation of nothing is only meant where a case says so


def case(query: str, expect: Expect, *, may_be_empty: bool = False) -> Any:
    return pytest.param(Case(query, expect, may_be_empty), id=query)


def where(rtype: str, keep: Callable[[Resource], bool]) -> Expect:
    return lambda d: d.ids(rtype, keep)


def patient_of(resource: Resource) -> set[str]:
    return {r for r in refs(resource.get("subject") or resource.get("patient")) if r.startswith("Patient/")}


def for_patient(pid: str, keep: Callable[[Resource], bool] = lambda r: True) -> Callable[[Resource], bool]:
    return lambda r: f"Patient/{pid}" in patient_of(r) and keep(r)


PATIENT_CASES = [
    case("/Patient?identifier=http://hl7.org/fhir/sid/us-ssn|999-94-5397",
         where("Patient", lambda r: token(r.get("identifier"), "http://hl7.org/fhir/sid/us-ssn|999-94-5397"))),
    case(f"/Patient?identifier={P_DEVIN}", where("Patient", lambda r: token(r.get("identifier"), P_DEVIN))),
    case("/Patient?identifier=S99940903", where("Patient", lambda r: token(r.get("identifier"), "S99940903"))),
    case("/Patient?identifier=test%201", where("Patient", lambda r: token(r.get("identifier"), "test 1"))),
    case("/Patient?identifier=|test%201", where("Patient", lambda r: token(r.get("identifier"), "|test 1"))),
    case("/Patient?identifier=http://hl7.org/fhir/sid/us-ssn|",
         where("Patient", lambda r: token(r.get("identifier"), "http://hl7.org/fhir/sid/us-ssn|"))),
    case("/Patient?identifier=urn:oid:2.16.840.1.113883.4.3.25|S99940903,test%202",
         where("Patient", lambda r: token(r.get("identifier"), "urn:oid:2.16.840.1.113883.4.3.25|S99940903")
               or token(r.get("identifier"), "test 2"))),
    case("/Patient?identifier=|S99940903", where("Patient", lambda r: token(r.get("identifier"), "|S99940903")),
         may_be_empty=True),
    case("/Patient?identifier=http://hl7.org/fhir/sid/us|",  # a system is a whole string, not a prefix
         where("Patient", lambda r: token(r.get("identifier"), "http://hl7.org/fhir/sid/us|")), may_be_empty=True),
    case(f"/Patient?identifier:of-type={V2_0203}|DL|S99940903",
         where("Patient", lambda r: of_type(r.get("identifier"), f"{V2_0203}|DL|S99940903"))),
    case("/Patient?identifier:text=driver", where("Patient", lambda r: token_text(r.get("identifier"), "driver"))),
    case("/Patient?name=chalmers", where("Patient", lambda r: starts(name_parts(r.get("name")), "chalmers"))),
    case("/Patient?name=CHAL", where("Patient", lambda r: starts(name_parts(r.get("name")), "CHAL"))),
    case("/Patient?name=Çhälmérs", where("Patient", lambda r: starts(name_parts(r.get("name")), "Çhälmérs"))),
    case("/Patient?name=mrs", where("Patient", lambda r: starts(name_parts(r.get("name")), "mrs"))),
    case("/Patient?name:contains=EEFE", where("Patient", lambda r: contains(name_parts(r.get("name")), "EEFE"))),
    case("/Patient?name:contains=athon", where("Patient", lambda r: contains(name_parts(r.get("name")), "athon"))),
    case("/Patient?name:exact=Chalmers", where("Patient", lambda r: "Chalmers" in name_parts(r.get("name")))),
    case("/Patient?family:exact=chalmers",
         where("Patient", lambda r: "chalmers" in [n.get("family") for n in r.get("name", [])]), may_be_empty=True),
    case("/Patient?given:exact=Jon", where("Patient", lambda r: any("Jon" in n.get("given", []) for n in r["name"]))),
    case("/Patient?family=o'keefe",
         where("Patient", lambda r: starts([n["family"] for n in r["name"] if "family" in n], "o'keefe"))),
    case("/Patient?family=cummerata",
         where("Patient", lambda r: starts([n["family"] for n in r["name"] if "family" in n], "cummerata"))),
    case("/Patient?given=jon", where("Patient", lambda r: starts([g for n in r["name"] for g in n.get("given", [])],
                                                                 "jon"))),
    case("/Patient?given=đevin", where("Patient", lambda r: starts([g for n in r["name"] for g in n.get("given", [])],
                                                                   "đevin"))),
    case("/Patient?given=jon&given=jonathon",
         where("Patient", lambda r: starts([g for n in r["name"] for g in n.get("given", [])], "jon")
               and starts([g for n in r["name"] for g in n.get("given", [])], "jonathon"))),
    case("/Patient?given=sarah,kasandra",
         where("Patient", lambda r: starts([g for n in r["name"] for g in n.get("given", [])], "sarah")
               or starts([g for n in r["name"] for g in n.get("given", [])], "kasandra"))),
    case("/Patient?gender=male", where("Patient", lambda r: r.get("gender") == "male")),
    case("/Patient?gender:not=female", where("Patient", lambda r: r.get("gender") != "female")),
    case("/Patient?gender=male&family=chalmers",
         where("Patient", lambda r: r.get("gender") == "male" and starts(name_parts(r["name"]), "chalmers"))),
    case("/Patient?birthdate=1927", where("Patient", lambda r: date_matches(r.get("birthDate"), "1927"))),
    case("/Patient?birthdate=1960-04", where("Patient", lambda r: date_matches(r.get("birthDate"), "1960-04"))),
    case("/Patient?birthdate=eq1927-05-21",
         where("Patient", lambda r: date_matches(r.get("birthDate"), "1927-05-21"))),
    case("/Patient?birthdate=lt1960", where("Patient", lambda r: date_matches(r.get("birthDate"), "lt1960"))),
    case("/Patient?birthdate=le1960", where("Patient", lambda r: date_matches(r.get("birthDate"), "le1960"))),
    case("/Patient?birthdate=gt2000", where("Patient", lambda r: date_matches(r.get("birthDate"), "gt2000"))),
    case("/Patient?birthdate=ge2000", where("Patient", lambda r: date_matches(r.get("birthDate"), "ge2000"))),
    case("/Patient?birthdate=sa1995-12-29",
         where("Patient", lambda r: date_matches(r.get("birthDate"), "sa1995-12-29"))),
    case("/Patient?birthdate=eb1963-07-15",
         where("Patient", lambda r: date_matches(r.get("birthDate"), "eb1963-07-15"))),
    case("/Patient?birthdate=ge1960&birthdate=lt1980",
         where("Patient", lambda r: date_matches(r.get("birthDate"), "ge1960")
               and date_matches(r.get("birthDate"), "lt1980"))),
    case("/Patient?birthdate=1927,2011",
         where("Patient", lambda r: date_matches(r.get("birthDate"), "1927")
               or date_matches(r.get("birthDate"), "2011"))),
    case("/Patient?birthdate:missing=true", where("Patient", lambda r: "birthDate" not in r)),
    case("/Patient?deceased=true", where("Patient", lambda r: "deceasedDateTime" in r or r.get("deceasedBoolean"))),
    case("/Patient?death-date=ge1990",
         where("Patient", lambda r: date_matches(r.get("deceasedDateTime"), "ge1990"))),
    case("/Patient?address-city=emporia",
         where("Patient", lambda r: starts([a.get("city", "") for a in r.get("address", [])], "emporia"))),
    case("/Patient?address=dismal", where("Patient", lambda r: starts(address_parts(r.get("address")), "dismal"))),
    case("/Patient?address:missing=true", where("Patient", lambda r: "address" not in r)),
    case("/Patient?active=true", where("Patient", lambda r: r.get("active") is True)),
    case("/Patient?active:missing=true", where("Patient", lambda r: "active" not in r)),
    case("/Patient?_id=searchpatient1,searchpatient3",
         where("Patient", lambda r: r["id"] in ("searchpatient1", "searchpatient3"))),
    case("/Patient?_id:not=searchpatient1", where("Patient", lambda r: r["id"] != "searchpatient1")),
    case("/Patient?phone=555-810-7203", where("Patient", lambda r: any(
        t.get("system") == "phone" and t.get("value") == "555-810-7203" for t in r.get("telecom", [])))),
    case("/Patient?language=urn:ietf:bcp:47|en-US", where("Patient", lambda r: any(
        token(c.get("language"), "urn:ietf:bcp:47|en-US") for c in r.get("communication", [])))),
    case("/Patient?_id:missing=false&gender=female", where("Patient", lambda r: r.get("gender") == "female")),
    case("/Patient?deceased=false", where("Patient", lambda r: "deceasedDateTime" not in r
                                          and not r.get("deceasedBoolean"))),
    case("/Patient?address:contains=meadow",
         where("Patient", lambda r: contains(address_parts(r.get("address")), "meadow"))),
    case("/Patient?family:exact=Chálmers",
         where("Patient", lambda r: "Chálmers" in [n.get("family") for n in r.get("name", [])]), may_be_empty=True),
    case("/Patient?birthdate=1927-05-21T10:00:00Z",
         where("Patient", lambda r: date_matches(r.get("birthDate"), "1927-05-21T10:00:00Z")), may_be_empty=True),
    case("/Patient?birthdate=ge1927-05-21T10:00:00Z&birthdate=lt1960",
         where("Patient", lambda r: date_matches(r.get("birthDate"), "ge1927-05-21T10:00:00Z")
               and date_matches(r.get("birthDate"), "lt1960"))),
    case("/Patient?_has:Observation:subject:_has:DiagnosticReport:result:status=partial",
         lambda d: d.has("Patient", "Observation", lambda o: o.get("subject"), lambda o: f"Observation/{o['id']}" in {
             ref for r in d.all("DiagnosticReport") if r.get("status") == "partial" for ref in refs(r.get("result"))})),
    case("/Patient?general-practitioner.given=sarah,bob",
         lambda d: d.ids("Patient", lambda r: any(starts(name_parts(p.get("name")), "sarah")
                                                  or starts(name_parts(p.get("name")), "bob")
                                                  for p in d.resolve(r.get("generalPractitioner"))))),
    case("/Patient?_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient",
         where("Patient", lambda r: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
               in r.get("meta", {}).get("profile", []))),
    case("/Patient?_profile:below=http://hl7.org/fhir/us/core",
         where("Patient", lambda r: any(p.startswith("http://hl7.org/fhir/us/core/")
                                        for p in r.get("meta", {}).get("profile", [])))),
    case("/Patient?_source=urn:fhir-hub:facility:79001", where("Patient", lambda r: True)),  # the hub stamps it
    case("/Patient?general-practitioner=searchpractitioner2",
         where("Patient", lambda r: refers(r.get("generalPractitioner"), "Practitioner/searchpractitioner2"))),
    case("/Patient?general-practitioner=Practitioner/searchpractitioner3",
         where("Patient", lambda r: refers(r.get("generalPractitioner"), "Practitioner/searchpractitioner3"))),
    case("/Patient?general-practitioner:Practitioner=searchpractitioner1",
         where("Patient", lambda r: refers(r.get("generalPractitioner"), "Practitioner/searchpractitioner1"))),
    case("/Patient?general-practitioner:missing=false", where("Patient", lambda r: bool(r.get("generalPractitioner")))),
    case("/Patient?general-practitioner.address-state=WA",
         lambda d: d.ids("Patient", lambda r: any(starts(address_parts(p.get("address")), "WA")
                                                  for p in d.resolve(r.get("generalPractitioner"))))),
    case("/Patient?general-practitioner:Practitioner.given=janedoe",
         lambda d: d.ids("Patient", lambda r: any(starts(name_parts(p.get("name")), "janedoe")
                                                  for p in d.resolve(r.get("generalPractitioner"))))),
    case("/Patient?_has:Observation:subject:code=527",
         lambda d: d.has("Patient", "Observation", lambda o: o.get("subject"), lambda o: token(o.get("code"), "527"))),
    case("/Patient?_has:Encounter:subject:status=planned",
         lambda d: d.has("Patient", "Encounter", lambda e: e.get("subject"), lambda e: e.get("status") == "planned")),
    case("/Patient?_has:DiagnosticReport:subject:status=partial",
         lambda d: d.has("Patient", "DiagnosticReport", lambda r: r.get("subject"),
                         lambda r: r.get("status") == "partial")),
    case(f"/Patient?_has:Condition:subject:code={SCT}|72892002",
         lambda d: d.has("Patient", "Condition", lambda c: c.get("subject"),
                         lambda c: token(c.get("code"), f"{SCT}|72892002"))),
    case(f"/Patient?_has:Immunization:patient:vaccine-code={CVX}|62&gender=female",
         lambda d: d.has("Patient", "Immunization", lambda i: i.get("patient"),
                         lambda i: token(i.get("vaccineCode"), f"{CVX}|62"))
         & d.ids("Patient", lambda r: r.get("gender") == "female")),
]

PRACTITIONER_CASES = [
    case("/Practitioner?given=sarah,bob",
         where("Practitioner", lambda r: starts([g for n in r["name"] for g in n.get("given", [])], "sarah")
               or starts([g for n in r["name"] for g in n.get("given", [])], "bob"))),
    case("/Practitioner?address-state=wa",
         where("Practitioner", lambda r: starts([a.get("state", "") for a in r.get("address", [])], "wa"))),
    case("/Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999908392",
         where("Practitioner", lambda r: token(r.get("identifier"), "http://hl7.org/fhir/sid/us-npi|9999908392"))),
    case("/Practitioner?name=emard", where("Practitioner", lambda r: starts(name_parts(r.get("name")), "emard"))),
    case("/Practitioner?family:missing=true",
         where("Practitioner", lambda r: not any("family" in n for n in r.get("name", [])))),
    case("/Practitioner?_has:Patient:general-practitioner:gender=male",
         lambda d: d.has("Practitioner", "Patient", lambda p: p.get("generalPractitioner"),
                         lambda p: p.get("gender") == "male")),
    case("/Practitioner?email=Irvin970.Emard19@example.com", where("Practitioner", lambda r: any(
        t.get("system") == "email" and t.get("value") == "Irvin970.Emard19@example.com"
        for t in r.get("telecom", [])))),
    case("/Organization?name=hilltop", where("Organization", lambda r: starts([r.get("name", "")], "hilltop"))),
    case("/Location?address-city=topeka",
         where("Location", lambda r: starts([r.get("address", {}).get("city", "")], "topeka"))),
    case("/Device?type:text=wheelchair", where("Device", lambda r: token_text(r.get("type"), "wheelchair"))),
    case("/AllergyIntolerance?category=food", where("AllergyIntolerance", lambda r: "food" in r.get("category", []))),
    case(f"/Device?patient={P_MARINE}", where("Device", lambda r: refers(r.get("patient"), f"Patient/{P_MARINE}"))),
]

ENCOUNTER_CASES = [
    case(f"/Encounter?patient={P_CORRIN}", where("Encounter", for_patient(P_CORRIN))),
    case(f"/Encounter?subject=Patient/{P_CORRIN}", where("Encounter", for_patient(P_CORRIN))),
    case(f"/Encounter?subject:Patient={P_CORRIN}", where("Encounter", for_patient(P_CORRIN))),
    case(f"/Encounter?subject={BASE}/Patient/{P_CORRIN}", where("Encounter", for_patient(P_CORRIN))),
    # 2017-01-01T22:58:16-05:00 is 2017-01-02 in UTC: the day a zone-less search value means
    case(f"/Encounter?patient={P_ELISA}&date=2017-01-02",
         where("Encounter", for_patient(P_ELISA, lambda r: date_matches(r["period"], "2017-01-02")))),
    case(f"/Encounter?patient={P_ELISA}&date=2017-01-01",
         where("Encounter", for_patient(P_ELISA, lambda r: date_matches(r["period"], "2017-01-01"))),
         may_be_empty=True),
    case(f"/Encounter?patient={P_SUMIKO}&date=1984",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "1984")))),
    case(f"/Encounter?patient={P_SUMIKO}&date=ge1984-11-01&date=lt1985",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "ge1984-11-01")
                                        and date_matches(r["period"], "lt1985")))),
    case(f"/Encounter?patient={P_SUMIKO}&date=gt1988-06",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "gt1988-06")))),
    case(f"/Encounter?patient={P_SUMIKO}&date=le1975",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "le1975")))),
    case(f"/Encounter?patient={P_SUMIKO}&date=sa1988-01-01",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "sa1988-01-01")))),
    case(f"/Encounter?patient={P_SUMIKO}&date=eb1970",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "eb1970")))),
    case(f"/Encounter?patient={P_SUMIKO}&date=1984-10-31T19:40:00-05:00",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "1984-10-31T19:40:00-05:00"))),
         may_be_empty=True),
    case(f"/Encounter?patient={P_SUMIKO}&date=ge1984-10-31T19:40:00-05:00&date=le1984-11-02",
         where("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "ge1984-10-31T19:40:00-05:00")
                                        and date_matches(r["period"], "le1984-11-02")))),
    case("/Encounter?class=EMER", where("Encounter", lambda r: token(r.get("class"), "EMER"))),
    case(f"/Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP&patient={P_MARINE}",
         where("Encounter", for_patient(P_MARINE, lambda r: token(
             r.get("class"), "http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP")))),
    case(f"/Encounter?reason-code:missing=true&patient={P_CORRIN}",
         where("Encounter", for_patient(P_CORRIN, lambda r: not r.get("reasonCode")))),
    case(f"/Encounter?type={SCT}|50849002", where("Encounter", lambda r: token(r.get("type"), f"{SCT}|50849002"))),
    case("/Encounter?status=planned", where("Encounter", lambda r: r.get("status") == "planned")),
    case("/Encounter?service-provider:missing=true", where("Encounter", lambda r: "serviceProvider" not in r)),
    case(f"/Encounter?participant-type=PPRF&patient={P_DEVIN}", where("Encounter", for_patient(P_DEVIN, lambda r: any(
        token(p.get("type"), "PPRF") for p in r.get("participant", []))))),
    case("/Encounter?subject:Patient.birthdate=1927-05-21&class=EMER",
         lambda d: d.ids("Encounter", lambda r: token(r.get("class"), "EMER") and any(
             date_matches(p.get("birthDate"), "1927-05-21") for p in d.resolve(r.get("subject"))))),
    case(f"/Encounter?_has:Condition:encounter:code={SCT}|73595000&patient={P_ELISA}",
         lambda d: d.has("Encounter", "Condition", lambda c: c.get("encounter"),
                         lambda c: token(c.get("code"), f"{SCT}|73595000"))
         & d.ids("Encounter", for_patient(P_ELISA))),
]

CONDITION_CASES = [
    case(f"/Condition?code={SCT}|73595000", where("Condition", lambda r: token(r.get("code"), f"{SCT}|73595000"))),
    case(f"/Condition?code=73595000&patient={P_SUMIKO}",
         where("Condition", for_patient(P_SUMIKO, lambda r: token(r.get("code"), "73595000")))),
    case(f"/Condition?code={SCT}|73595000,{SCT}|160903007&patient={P_ELISA}",
         where("Condition", for_patient(P_ELISA, lambda r: token(r.get("code"), f"{SCT}|73595000")
                                        or token(r.get("code"), f"{SCT}|160903007")))),
    case("/Condition?code:text=viral", where("Condition", lambda r: token_text(r.get("code"), "viral"))),
    case("/Condition?code:text=Ácute%20VIRAL", where("Condition", lambda r: token_text(r.get("code"), "Ácute viral"))),
    case("/Condition?code:text=STRESS", where("Condition", lambda r: token_text(r.get("code"), "STRESS"))),
    case(f"/Condition?subject=Patient/{P_DEVIN}", where("Condition", for_patient(P_DEVIN))),
    case(f"/Condition?clinical-status=active&patient={P_MARINE}",
         where("Condition", for_patient(P_MARINE, lambda r: token(r.get("clinicalStatus"), "active")))),
    case("/Condition?clinical-status:not=resolved",
         where("Condition", lambda r: not token(r.get("clinicalStatus"), "resolved"))),
    case(f"/Condition?abatement-date:missing=true&patient={P_MARINE}",
         where("Condition", for_patient(P_MARINE, lambda r: "abatementDateTime" not in r))),
    case(f"/Condition?onset-date=ge1990&subject=Patient/{P_MARINE}",
         where("Condition", for_patient(P_MARINE, lambda r: date_matches(r.get("onsetDateTime"), "ge1990")))),
    case("/Condition?encounter.class=IMP",
         lambda d: d.ids("Condition", lambda r: any(token(e.get("class"), "IMP") for e in d.resolve(r["encounter"])))),
    case("/Condition?subject:Patient.name=medhurst",
         lambda d: d.ids("Condition", lambda r: any(starts(name_parts(p.get("name")), "medhurst")
                                                    for p in d.resolve(r.get("subject"))))),
    case(f"/Condition?encounter.subject:Patient.gender=male&code={SCT}|73595000",
         lambda d: d.ids("Condition", lambda r: token(r.get("code"), f"{SCT}|73595000") and any(
             p.get("gender") == "male" for e in d.resolve(r.get("encounter")) for p in d.resolve(e.get("subject"))))),
]

MEDICATION_AND_IMMUNIZATION_CASES = [
    case("/MedicationRequest?status=active", where("MedicationRequest", lambda r: r.get("status") == "active")),
    # two criteria matching over a thousand resources each, and a chain that does (one page: each page of a
    # search recomputes its matches, so 20-entry pages would cost 80 searches)
    case("/MedicationRequest?status=stopped&intent=order&authoredon=ge1990&_count=1000",
         where("MedicationRequest", lambda r: r.get("status") == "stopped" and r.get("intent") == "order"
               and date_matches(r.get("authoredOn"), "ge1990"))),
    case("/MedicationRequest?subject:Patient.gender=female&status=stopped&_count=1000",
         lambda d: d.ids("MedicationRequest", lambda r: r.get("status") == "stopped" and any(
             p.get("gender") == "female" for p in d.resolve(r.get("subject"))))),
    case("/Patient?_has:MedicationRequest:subject:status=stopped",
         lambda d: d.has("Patient", "MedicationRequest", lambda r: r.get("subject"),
                         lambda r: r.get("status") == "stopped")),
    case(f"/MedicationRequest?intent=order&patient={P_CORRIN}",
         where("MedicationRequest", for_patient(P_CORRIN, lambda r: r.get("intent") == "order"))),
    case(f"/MedicationRequest?status:not=stopped&patient={P_SUMIKO}",
         where("MedicationRequest", for_patient(P_SUMIKO, lambda r: r.get("status") != "stopped"))),
    case("/MedicationRequest?status=active,on-hold&intent=order&authoredon=ge2022",
         where("MedicationRequest", lambda r: r.get("status") in ("active", "on-hold") and r.get("intent") == "order"
               and date_matches(r.get("authoredOn"), "ge2022"))),
    case("/MedicationRequest?authoredon=1993",
         where("MedicationRequest", lambda r: date_matches(r.get("authoredOn"), "1993"))),
    case(f"/MedicationRequest?authoredon=ne2022&patient={P_CORRIN}",
         where("MedicationRequest", for_patient(P_CORRIN, lambda r: date_matches(r.get("authoredOn"), "ne2022")))),
    case(f"/MedicationRequest?authoredon=lt1990-06-15&authoredon=gt1989-11&patient={P_MARINE}",
         where("MedicationRequest", for_patient(P_MARINE, lambda r: date_matches(r["authoredOn"], "lt1990-06-15")
                                                and date_matches(r["authoredOn"], "gt1989-11")))),
    case("/MedicationRequest?code=http://www.nlm.nih.gov/research/umls/rxnorm|314076",
         where("MedicationRequest", lambda r: token(r.get("medicationCodeableConcept"),
                                                    "http://www.nlm.nih.gov/research/umls/rxnorm|314076"))),
    case("/MedicationRequest?encounter.subject:Patient.family=cole",
         lambda d: d.ids("MedicationRequest", lambda r: any(
             starts([n.get("family", "") for n in p.get("name", [])], "cole")
             for e in d.resolve(r.get("encounter")) for p in d.resolve(e.get("subject"))))),
    case(f"/Immunization?vaccine-code={CVX}|140&patient={P_ELISA}",
         where("Immunization", for_patient(P_ELISA, lambda r: token(r.get("vaccineCode"), f"{CVX}|140")))),
    case("/Immunization?vaccine-code=207,208",
         where("Immunization", lambda r: token(r.get("vaccineCode"), "207") or token(r.get("vaccineCode"), "208"))),
    case("/Immunization?vaccine-code:text=influenza",
         where("Immunization", lambda r: token_text(r.get("vaccineCode"), "influenza"))),
    # 2016-12-31T22:58:16-05:00 is in 2017 in UTC
    case(f"/Immunization?date=2017&patient={P_ELISA}",
         where("Immunization", for_patient(P_ELISA, lambda r: date_matches(r.get("occurrenceDateTime"), "2017")))),
    case(f"/Immunization?date=2016&patient={P_ELISA}",  # none: her 2016 vaccination is 2017 in UTC
         where("Immunization", for_patient(P_ELISA, lambda r: date_matches(r.get("occurrenceDateTime"), "2016"))),
         may_be_empty=True),
    case("/Immunization?date=ge2021-06&vaccine-code=208",
         where("Immunization", lambda r: date_matches(r.get("occurrenceDateTime"), "ge2021-06")
               and token(r.get("vaccineCode"), "208"))),
    case("/Immunization?date=lt1970", where("Immunization", lambda r: date_matches(r["occurrenceDateTime"], "lt1970"))),
]

MS_CASES = [
    case("/PractitionerRole?service.name=Activity-Claim",
         lambda d: d.ids("PractitionerRole", lambda r: any(starts([s.get("name", "")], "Activity-Claim")
                                                           for s in d.resolve(r.get("healthcareService"))))),
    case("/PractitionerRole?service.name:exact=Activity-Claim",
         lambda d: d.ids("PractitionerRole", lambda r: any(s.get("name") == "Activity-Claim"
                                                           for s in d.resolve(r.get("healthcareService"))))),
    case("/PractitionerRole?service.identifier=https://piesystems.net/Epic/pool|p%2030289024",
         lambda d: d.ids("PractitionerRole", lambda r: any(
             token(s.get("identifier"), "https://piesystems.net/Epic/pool|p 30289024")
             for s in d.resolve(r.get("healthcareService"))))),
    case("/PractitionerRole?service.name=critical&specialty=408478003",
         lambda d: d.ids("PractitionerRole", lambda r: token(r.get("specialty"), "408478003") and any(
             starts([s.get("name", "")], "critical") for s in d.resolve(r.get("healthcareService"))))),
    case(f"/PractitionerRole?service=HealthcareService/{HS_APPOINTMENTS}",
         where("PractitionerRole",
               lambda r: refers(r.get("healthcareService"), f"HealthcareService/{HS_APPOINTMENTS}"))),
    case(f"/PractitionerRole?specialty={SCT}|394813003",
         where("PractitionerRole", lambda r: token(r.get("specialty"), f"{SCT}|394813003"))),
    case("/PractitionerRole?role=363LA2100X", where("PractitionerRole", lambda r: token(r.get("code"), "363LA2100X"))),
    case("/PractitionerRole?practitioner=Practitioner/fake-practitioner-01",
         where("PractitionerRole", lambda r: refers(r.get("practitioner"), "Practitioner/fake-practitioner-01"))),
    case(f"/PractitionerRole?location={LOCATION_TWICE}",
         where("PractitionerRole", lambda r: refers(r.get("location"), f"Location/{LOCATION_TWICE}"))),
    case("/PractitionerRole?role:missing=false&active=true",
         where("PractitionerRole", lambda r: bool(r.get("code")) and r.get("active") is True)),
    case("/HealthcareService?active=false", where("HealthcareService", lambda r: r.get("active") is False)),
    case("/HealthcareService?name=activity-claim&active=true",
         where("HealthcareService", lambda r: starts([r["name"]], "activity-claim") and r.get("active") is True)),
    case("/HealthcareService?name:contains=CARE", where("HealthcareService", lambda r: contains([r["name"]], "CARE"))),
    case("/HealthcareService?identifier=Activity-Claim",
         where("HealthcareService", lambda r: token(r.get("identifier"), "Activity-Claim"))),
    case("/HealthcareService?identifier:text=activity-claim",
         where("HealthcareService", lambda r: token_text(r.get("identifier"), "activity-claim"))),
    case(f"/HealthcareService?location=Location/{LOCATION_CRITICAL_1}",
         where("HealthcareService", lambda r: refers(r.get("location"), f"Location/{LOCATION_CRITICAL_1}"))),
    case("/HealthcareService?_has:PractitionerRole:service:specialty=408478003",
         lambda d: d.has("HealthcareService", "PractitionerRole", lambda r: r.get("healthcareService"),
                         lambda r: token(r.get("specialty"), "408478003"))),
    case("/HealthcareService?_has:PractitionerRole:service:role=363LA2100X,207LA0401X",
         lambda d: d.has("HealthcareService", "PractitionerRole", lambda r: r.get("healthcareService"),
                         lambda r: token(r.get("code"), "363LA2100X") or token(r.get("code"), "207LA0401X"))),
    case("/HealthcareService?identifier:missing=true", where("HealthcareService", lambda r: "identifier" not in r)),
]

OBSERVATION_CASES = [
    case("/Observation?subject=searchpatient2",
         where("Observation", lambda r: refers(r.get("subject"), "Patient/searchpatient2"))),
    case(f"/Observation?subject={BASE}/Patient/searchpatient2",
         where("Observation", lambda r: refers(r.get("subject"), "Patient/searchpatient2"))),
    case("/Observation?subject:Patient=searchpatient1",
         where("Observation", lambda r: refers(r.get("subject"), "Patient/searchpatient1"))),
    case("/Observation?patient=Patient/searchpatient1",
         where("Observation", lambda r: refers(r.get("subject"), "Patient/searchpatient1"))),
    case("/Observation?value-quantity:missing=true", where("Observation", lambda r: "valueQuantity" not in r)),
    case("/Observation?date:missing=true",
         where("Observation", lambda r: not any(k.startswith("effective") for k in r))),
    case("/Observation?_profile:above=http://hl7.org/fhir/StructureDefinition/vitalsigns/more",
         where("Observation", lambda r: "http://hl7.org/fhir/StructureDefinition/vitalsigns"
               in r.get("meta", {}).get("profile", []))),
    case("/Observation?subject:missing=true", where("Observation", lambda r: "subject" not in r)),
    case("/Observation?subject=Patient/searchpatient2,Patient/searchpatient1",
         where("Observation", lambda r: refers(r.get("subject"), "Patient/searchpatient2")
               or refers(r.get("subject"), "Patient/searchpatient1"))),
    case("/Observation?subject:Group=searchpatient2", where("Observation", lambda r: False), may_be_empty=True),
    case("/Observation?subject.birthdate=1987-02-20",
         lambda d: d.ids("Observation", lambda r: any(date_matches(p.get("birthDate"), "1987-02-20")
                                                      for p in d.resolve(r.get("subject"))))),
    case("/Observation?subject._id=searchpatient2",
         lambda d: d.ids("Observation", lambda r: any(p["id"] == "searchpatient2"
                                                      for p in d.resolve(r.get("subject"))))),
    # Patient/example is referenced by four Observations but was never loaded: no resource, nothing to match
    case("/Observation?subject._id=example",
         lambda d: d.ids("Observation", lambda r: any(p["id"] == "example" for p in d.resolve(r.get("subject")))),
         may_be_empty=True),
    case("/Observation?subject:Patient.gender:not=male",
         lambda d: d.ids("Observation", lambda r: any(p["resourceType"] == "Patient" and p.get("gender") != "male"
                                                      for p in d.resolve(r.get("subject"))))),
    case("/Observation?subject.given=jon",
         lambda d: d.ids("Observation", lambda r: any(starts(name_parts(p.get("name")), "jon")
                                                      for p in d.resolve(r.get("subject"))))),
    case("/Observation?code=2823-3", where("Observation", lambda r: token(r.get("code"), "2823-3"))),
    case("/Observation?code=LOINC|2823-3", where("Observation", lambda r: token(r.get("code"), "LOINC|2823-3"))),
    case("/Observation?code=http://loinc.org|2823-3",
         where("Observation", lambda r: token(r.get("code"), "http://loinc.org|2823-3")), may_be_empty=True),
    case("/Observation?code=http://loinc.org|", where("Observation", lambda r: token(r.get("code"), "http://loinc.org|"))),
    case("/Observation?code:text=body", where("Observation", lambda r: token_text(r.get("code"), "body"))),
    case("/Observation?value-quantity=10",
         where("Observation", lambda r: quantity_matches(r.get("valueQuantity"), "10"))),
    case("/Observation?value-quantity=gt9.5",
         where("Observation", lambda r: quantity_matches(r.get("valueQuantity"), "gt9.5"))),
    case("/Observation?value-quantity=lt10",
         where("Observation", lambda r: quantity_matches(r.get("valueQuantity"), "lt10"))),
    case("/Observation?value-quantity=ge12&value-quantity=le100",
         where("Observation", lambda r: quantity_matches(r.get("valueQuantity"), "ge12")
               and quantity_matches(r.get("valueQuantity"), "le100"))),
    case("/Observation?value-quantity=6.3||mmol/L",
         where("Observation", lambda r: quantity_matches(r.get("valueQuantity"), "6.3||mmol/L"))),
    case("/Observation?value-quantity=67|http://unitsofmeasure.org|kg",
         where("Observation", lambda r: quantity_matches(r.get("valueQuantity"), "67|http://unitsofmeasure.org|kg"))),
    case("/Observation?value-quantity=gt50|http://unitsofmeasure.org|[lb_av]",
         where("Observation", lambda r: quantity_matches(r.get("valueQuantity"),
                                                         "gt50|http://unitsofmeasure.org|[lb_av]"))),
    case("/Observation?value-string=BLU", where("Observation", lambda r: starts([r.get("valueString", "")], "BLU")
                                                 and "valueString" in r)),
    case("/Observation?code-value-quantity=LOINC|2823-3$gt9.5",
         where("Observation", lambda r: code_value_quantity([r], "LOINC|2823-3$gt9.5"))),
    case("/Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100",
         where("Observation", lambda r: code_value_quantity(r.get("component", []), "http://loinc.org|8480-6$gt100"))),
    case("/Observation?component-code-value-quantity=http://loinc.org|8480-6$lt100",
         where("Observation", lambda r: code_value_quantity(r.get("component", []), "http://loinc.org|8480-6$lt100")),
         may_be_empty=True),
    case("/Observation?combo-code-value-quantity=http://loinc.org|8462-4$60,LOINC|2823-3$10",
         where("Observation", lambda r: code_value_quantity([r, *r.get("component", [])], "http://loinc.org|8462-4$60")
               or code_value_quantity([r, *r.get("component", [])], "LOINC|2823-3$10"))),
    case("/Observation?date=2016-03-28", where("Observation", lambda r: date_matches(
        r.get("effectiveDateTime") or r.get("effectivePeriod"), "2016-03-28"))),
    # f001 has a Period with a start only: it reaches into every later range
    case("/Observation?date=gt2020", where("Observation", lambda r: date_matches(
        r.get("effectiveDateTime") or r.get("effectivePeriod"), "gt2020"))),
    case("/Observation?date=sa2013-04-01", where("Observation", lambda r: date_matches(
        r.get("effectiveDateTime") or r.get("effectivePeriod"), "sa2013-04-01"))),
    case("/Observation?date=eb2013", where("Observation", lambda r: date_matches(
        r.get("effectiveDateTime") or r.get("effectivePeriod"), "eb2013"))),
    case("/Observation?date=2013", where("Observation", lambda r: date_matches(
        r.get("effectiveDateTime") or r.get("effectivePeriod"), "2013")), may_be_empty=True),
    case(f"/Observation?_tag={HTEST}",
         where("Observation", lambda r: token(r.get("meta", {}).get("tag"), HTEST))),
    case(f"/Observation?_tag:not={HTEST}",
         where("Observation", lambda r: not token(r.get("meta", {}).get("tag"), HTEST))),
    case("/Observation?_profile=http://hl7.org/fhir/StructureDefinition/vitalsigns",
         where("Observation", lambda r: "http://hl7.org/fhir/StructureDefinition/vitalsigns"
               in r.get("meta", {}).get("profile", []))),
    case("/DiagnosticReport?result=Observation/searchobservation1",
         where("DiagnosticReport", lambda r: refers(r.get("result"), "Observation/searchobservation1"))),
    case("/DiagnosticReport?result.subject:Patient.identifier=test%202",
         lambda d: d.ids("DiagnosticReport", lambda r: any(
             token(p.get("identifier"), "test 2")
             for o in d.resolve(r.get("result")) for p in d.resolve(o.get("subject"))
             if p["resourceType"] == "Patient"))),
    case("/DiagnosticReport?result.code=2823-3",
         lambda d: d.ids("DiagnosticReport", lambda r: any(token(o.get("code"), "2823-3")
                                                           for o in d.resolve(r.get("result"))))),
    case("/DiagnosticReport?result.value-quantity=ge10",
         lambda d: d.ids("DiagnosticReport", lambda r: any(quantity_matches(o.get("valueQuantity"), "ge10")
                                                           for o in d.resolve(r.get("result"))))),
    case("/DiagnosticReport?subject.name=chalmers&status=final,partial",
         lambda d: d.ids("DiagnosticReport", lambda r: r.get("status") in ("final", "partial") and any(
             starts(name_parts(p.get("name")), "chalmers") for p in d.resolve(r.get("subject"))))),
]

CASES = [*PATIENT_CASES, *PRACTITIONER_CASES, *ENCOUNTER_CASES, *CONDITION_CASES,
         *MEDICATION_AND_IMMUNIZATION_CASES, *MS_CASES, *OBSERVATION_CASES]


@pytest.mark.parametrize("c", CASES)
def test_matches_are_the_ids_computed_from_the_fixture(loaded: Loaded, c: Case) -> None:
    """Each query's matches, over every page, are exactly the fixture's ids, each once, and total counts them."""
    expected = c.expect(loaded.data)
    assert expected or c.may_be_empty, "the expectation finds nothing in the fixture, so the case tests nothing"
    found = search(loaded.client, c.query)
    rtype = urlsplit(c.query).path.strip("/")
    assert {ref.split("/")[0] for ref in found.refs()} <= {rtype}
    ids = found.ids()
    assert len(ids) == len(set(ids)), "a resource was returned twice"
    assert set(ids) == expected, f"missing {sorted(expected - set(ids))}, unexpected {sorted(set(ids) - expected)}"
    assert found.bundles[0].get("total") == len(expected)


# ------------------------------------------------------------------------------ _include and _revinclude
def included_by(d: Data, sources: Iterable[Resource], path: Callable[[Resource], Any],
                target: str | None = None) -> set[str]:
    """``Type/id`` of the loaded resources the sources reference through ``path`` (of ``target`` type only)."""
    return {f"{r['resourceType']}/{r['id']}" for s in sources for r in d.resolve(path(s))
            if target is None or r["resourceType"] == target}


def referring(d: Data, rtype: str, path: Callable[[Resource], Any], targets: Iterable[Resource]) -> set[str]:
    """``Type/id`` of the ``rtype`` resources that reference any of ``targets`` through ``path``."""
    wanted = {f"{t['resourceType']}/{t['id']}" for t in targets}
    return {f"{rtype}/{r['id']}" for r in d.all(rtype) if refs(path(r)) & wanted}


def matched(d: Data, rtype: str, keep: Callable[[Resource], bool]) -> list[Resource]:
    return [r for r in d.all(rtype) if keep(r)]


def _chalmers(d: Data) -> list[Resource]:
    return matched(d, "Patient", lambda r: starts(name_parts(r.get("name")), "chalmers"))


def _partial_report_chain(d: Data) -> set[str]:
    reports = matched(d, "DiagnosticReport", lambda r: r.get("status") == "partial")
    results = [r for ref in included_by(d, reports, lambda r: r.get("result")) if (r := d.get(ref))]
    subjects = [r for ref in included_by(d, results, lambda o: o.get("subject")) if (r := d.get(ref))]
    doctors = included_by(d, subjects, lambda p: p.get("generalPractitioner"))
    return {*(f"Observation/{o['id']}" for o in results), *(f"Patient/{p['id']}" for p in subjects), *doctors}


def _devin_requests_chain(d: Data) -> set[str]:
    requests = matched(d, "MedicationRequest", for_patient(P_DEVIN))
    encounters = included_by(d, requests, lambda r: r.get("encounter"))
    return encounters | included_by(d, [d.get(e) or {} for e in encounters], lambda e: e.get("subject"))


INCLUDE_CASES = [
    ("/Patient?name=chalmers&_include=Patient:general-practitioner",
     lambda d: included_by(d, _chalmers(d), lambda p: p.get("generalPractitioner"))),
    ("/Patient?name=chalmers&_include=Patient:general-practitioner:Organization", lambda d: set()),
    ("/Observation?code=2823-3&_include=Observation:subject",
     lambda d: included_by(d, matched(d, "Observation", lambda r: token(r.get("code"), "2823-3")),
                           lambda o: o.get("subject"))),
    ("/Observation?_id=searchobservation2&_revinclude=DiagnosticReport:result",
     lambda d: referring(d, "DiagnosticReport", lambda r: r.get("result"), [d.get("Observation/searchobservation2")
                                                                            or {}])),
    ("/DiagnosticReport?status=partial&_include=DiagnosticReport:result&_include:iterate=Observation:subject"
     "&_include:iterate=Patient:general-practitioner", _partial_report_chain),
    ("/PractitionerRole?specialty=408478003&_include=PractitionerRole:service",
     lambda d: included_by(d, matched(d, "PractitionerRole", lambda r: token(r.get("specialty"), "408478003")),
                           lambda r: r.get("healthcareService"))),
    ("/HealthcareService?name=critical&_revinclude=PractitionerRole:service",
     lambda d: referring(d, "PractitionerRole", lambda r: r.get("healthcareService"),
                         matched(d, "HealthcareService", lambda r: starts([r["name"]], "critical")))),
    (f"/Patient?_id={P_DEVIN}&_revinclude=Immunization:patient&_revinclude=Condition:subject",
     lambda d: referring(d, "Immunization", lambda r: r.get("patient"), [d.get(f"Patient/{P_DEVIN}") or {}])
     | referring(d, "Condition", lambda r: r.get("subject"), [d.get(f"Patient/{P_DEVIN}") or {}])),
    (f"/Condition?patient={P_DEVIN}&_include=Condition:encounter",
     lambda d: included_by(d, matched(d, "Condition", for_patient(P_DEVIN)), lambda c: c.get("encounter"))),
    (f"/Encounter?patient={P_DEVIN}&class=EMER&_revinclude=Condition:encounter&_include=Encounter:subject:Patient",
     lambda d: referring(d, "Condition", lambda c: c.get("encounter"),
                         matched(d, "Encounter", for_patient(P_DEVIN, lambda e: token(e.get("class"), "EMER"))))
     | {f"Patient/{P_DEVIN}"}),
    (f"/Encounter?patient={P_DEVIN}&_include=Encounter:subject:Group", lambda d: set()),
    (f"/MedicationRequest?patient={P_DEVIN}&_include=MedicationRequest:encounter"
     "&_include:iterate=Encounter:subject", _devin_requests_chain),
]


@pytest.mark.parametrize(("query", "expect"), INCLUDE_CASES, ids=[q for q, _ in INCLUDE_CASES])
def test_included_resources_are_exactly_the_referenced_ones(loaded: Loaded, query: str,
                                                            expect: Callable[[Data], set[str]]) -> None:
    """Included entries (mode include) are the resources the fixture links the matches to, and no others."""
    found = search(loaded.client, query + "&_count=1000")
    assert len(found.bundles) == 1
    includes = found.refs("include")
    assert len(includes) == len(set(includes)), "an included resource appears twice"
    assert not set(includes) & set(found.refs("match")), "a match is also listed as included"
    assert set(includes) == expect(loaded.data)
    assert found.ids(), "the query itself matched nothing"
    assert found.bundles[0]["total"] == len(found.ids())  # includes are not counted


def test_each_page_carries_the_includes_of_its_own_matches(loaded: Loaded) -> None:
    """Paged with ``_include``, every page includes exactly the encounters of the conditions on that page."""
    d = loaded.data
    found = search(loaded.client, f"/Condition?patient={P_CORRIN}&_include=Condition:encounter&_count=4")
    assert len(found.bundles) > 2
    assert sorted(found.ids()) == sorted(d.ids("Condition", for_patient(P_CORRIN)))
    for bundle in found.bundles:
        page = Found([bundle])
        conditions = [d.get(f"Condition/{i}") or {} for i in page.ids()]
        assert sorted(page.refs("include")) == sorted(included_by(d, conditions, lambda c: c.get("encounter")))


# ------------------------------------------------------------------------------------------- _sort
def _name(r: Resource) -> str:
    return fold(r["name"])


def _family(r: Resource) -> str | None:
    families = [fold(n["family"]) for n in r.get("name", []) if n.get("family")]
    return min(families) if families else None


def _start(r: Resource) -> datetime | None:
    found = when(r.get("period") or r.get("occurrenceDateTime"))
    return found[0] if found else None


def _end(r: Resource) -> datetime | None:
    found = when(r.get("period") or r.get("occurrenceDateTime"))
    return found[1] if found else None


def _effective_start(r: Resource) -> datetime | None:
    found = when(r.get("effectiveDateTime") or r.get("effectivePeriod"))
    return found[0] if found else None


def _effective_end(r: Resource) -> datetime | None:
    found = when(r.get("effectiveDateTime") or r.get("effectivePeriod"))
    return found[1] if found else None


SORT_CASES = [
    ("/HealthcareService?_sort=name,_id", lambda d: order(d.all("HealthcareService"), (_name, False), (rid, False))),
    ("/HealthcareService?_sort=-name,_id", lambda d: order(d.all("HealthcareService"), (_name, True), (rid, False))),
    ("/HealthcareService?_sort=-active,name,-_id",
     lambda d: order(d.all("HealthcareService"), (lambda r: str(r["active"]).lower(), True), (_name, False),
                     (rid, True))),
    ("/HealthcareService?_sort=_lastUpdated", lambda d: [r["id"] for r in d.all("HealthcareService")]),
    ("/HealthcareService?_sort=-_lastUpdated", lambda d: [r["id"] for r in reversed(d.all("HealthcareService"))]),
    ("/Patient?_sort=birthdate,_id", lambda d: order(d.all("Patient"), (birth_start, False), (rid, False))),
    ("/Patient?family=chalmers&_sort=-birthdate,_id",
     lambda d: order(_chalmers(d), (birth_start, True), (rid, False))),
    ("/Patient?_sort=gender,-birthdate,_id",
     lambda d: order(d.all("Patient"), (lambda r: r.get("gender"), False), (birth_start, True), (rid, False))),
    ("/Practitioner?_sort=family,_id", lambda d: order(d.all("Practitioner"), (_family, False), (rid, False))),
    (f"/Encounter?patient={P_SUMIKO}&_sort=date,_id",
     lambda d: order(matched(d, "Encounter", for_patient(P_SUMIKO)), (_start, False), (rid, False))),
    (f"/Encounter?patient={P_SUMIKO}&_sort=-date,_id",
     lambda d: order(matched(d, "Encounter", for_patient(P_SUMIKO)), (_end, True), (rid, False))),
    (f"/Immunization?patient={P_ELISA}&_sort=-date,_id",
     lambda d: order(matched(d, "Immunization", for_patient(P_ELISA)), (_end, True), (rid, False))),
    (f"/MedicationRequest?patient={P_CORRIN}&_sort=authoredon,_id",
     lambda d: order(matched(d, "MedicationRequest", for_patient(P_CORRIN)),
                     (lambda r: date_range(r["authoredOn"])[0], False), (rid, False))),
    # f001's Period has no end: ascending it sorts by its start, descending it comes first (unbounded end)
    ("/Observation?_sort=date,_id", lambda d: order(d.all("Observation"), (_effective_start, False), (rid, False))),
    ("/Observation?_sort=-date,_id", lambda d: order(d.all("Observation"), (_effective_end, True), (rid, False))),
    # several pages: the keyset must carry the sort values across page boundaries
    (f"/Encounter?patient={P_MARINE}&_sort=-date,_id&_count=37",
     lambda d: order(matched(d, "Encounter", for_patient(P_MARINE)), (_end, True), (rid, False))),
    ("/Practitioner?_sort=family,_id&_count=7", lambda d: order(d.all("Practitioner"), (_family, False), (rid, False))),
]


@pytest.mark.parametrize(("query", "expect"), SORT_CASES, ids=[q for q, _ in SORT_CASES])
def test_sort_order_is_the_order_computed_from_the_fixture(loaded: Loaded, query: str,
                                                           expect: Callable[[Data], list[str]]) -> None:
    """The matches over all pages come in exactly the computed order (ties broken by a final key)."""
    expected = expect(loaded.data)
    assert len(expected) > 1
    assert search(loaded.client, query).ids() == expected


def test_sort_without_a_tie_breaker_orders_the_values(loaded: Loaded) -> None:
    """With only ``_sort=name`` the order of equal names is the server's choice, the order of names is not."""
    by_id = {r["id"]: r for r in loaded.data.all("HealthcareService")}
    names = [_name(by_id[i]) for i in search(loaded.client, "/HealthcareService?_sort=name").ids()]
    assert names == sorted(_name(r) for r in by_id.values())


# ------------------------------------------------------------------------------------------- paging
def test_paging_returns_every_match_exactly_once(loaded: Loaded) -> None:
    """1,722 stopped requests over 400-entry pages: every page full but the last, the union exact."""
    expected = loaded.data.ids("MedicationRequest", lambda r: r.get("status") == "stopped")
    found = search(loaded.client, "/MedicationRequest?status=stopped&_count=400")
    sizes = [len([e for e in b.get("entry", []) if e["search"]["mode"] == "match"]) for b in found.bundles]
    assert sizes == [400] * (len(expected) // 400) + ([len(expected) % 400] if len(expected) % 400 else [])
    ids = found.ids()
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert all(b["total"] == len(expected) for b in found.bundles)


PREVIOUS_CASES = [
    (f"/Encounter?patient={P_SUMIKO}&_sort=date,_id&_count=10",
     lambda d: order(matched(d, "Encounter", for_patient(P_SUMIKO)), (_start, False), (rid, False))),
    ("/HealthcareService?_count=4", lambda d: sorted(r["id"] for r in d.all("HealthcareService"))),  # no criteria
]


@pytest.mark.parametrize(("query", "expect"), PREVIOUS_CASES, ids=[q for q, _ in PREVIOUS_CASES])
def test_previous_link_returns_the_page_before(loaded: Loaded, query: str,
                                               expect: Callable[[Data], list[str]]) -> None:
    """Walking forward two pages and back one gives the second page again; the first page has no previous."""
    client, size = loaded.client, int(query.rsplit("=", 1)[1])
    expected = expect(loaded.data)
    first = client.get(query).json()
    assert link(first, "previous") is None
    second = client.get(link(first, "next")).json()
    third = client.get(link(second, "next")).json()
    back = client.get(link(third, "previous")).json()

    def ids(bundle: dict[str, Any]) -> list[str]:
        return [e["resource"]["id"] for e in bundle["entry"]]

    assert [ids(first), ids(second), ids(third)] == [expected[:size], expected[size:2 * size],
                                                     expected[2 * size:3 * size]]
    assert ids(back) == expected[size:2 * size]


# ------------------------------------------------------------------------------- _total, _summary, _elements
def test_summary_count_gives_the_total_and_no_resources(loaded: Loaded) -> None:
    expected = loaded.data.ids("Encounter", for_patient(P_MARINE))
    bundle = loaded.client.get(f"/Encounter?patient={P_MARINE}&_summary=count").json()
    assert bundle["total"] == len(expected)
    assert [e for e in bundle.get("entry", []) if e["search"]["mode"] in ("match", "include")] == []


def test_total_none_leaves_the_total_out(loaded: Loaded) -> None:
    expected = loaded.data.ids("Condition", for_patient(P_SUMIKO))
    found = search(loaded.client, f"/Condition?patient={P_SUMIKO}&_total=none&_count=25")
    assert all("total" not in b for b in found.bundles)
    assert sorted(found.ids()) == sorted(expected)


def test_total_accurate_counts_every_match(loaded: Loaded) -> None:
    expected = loaded.data.ids("Condition", lambda r: token(r.get("clinicalStatus"), "active"))
    assert loaded.client.get("/Condition?clinical-status=active&_total=accurate&_count=5").json()["total"] == len(
        expected)


# R4 Patient elements marked Σ (and Resource.id/meta/implicitRules)
PATIENT_SUMMARY = frozenset({"id", "meta", "implicitRules", "identifier", "active", "name", "telecom", "gender",
                             "birthDate", "deceasedBoolean", "deceasedDateTime", "address", "managingOrganization",
                             "link"})
PATIENT_MODIFIERS = frozenset({"active", "deceasedBoolean", "deceasedDateTime", "link", "implicitRules",
                               "modifierExtension"})


@pytest.mark.parametrize(("summary", "kept"), [
    ("true", lambda r: {k for k in r if k in PATIENT_SUMMARY} | {"resourceType"}),
    ("data", lambda r: set(r) - {"text"}),
    ("text", lambda r: {"resourceType", "id", "meta", "text"} & set(r) | {"meta"}),
])
def test_summary_keeps_the_elements_r4_names(loaded: Loaded, summary: str,
                                            kept: Callable[[Resource], set[str]]) -> None:
    """``_summary`` returns the right resources with the elements R4 assigns to that summary, values intact."""
    wanted = (P_SUMIKO, P_DEVIN, "searchpatient1")
    found = search(loaded.client, f"/Patient?_id={','.join(wanted)}&_summary={summary}")
    resources = {e["resource"]["id"]: e["resource"] for e in found.entries("match")}
    assert set(resources) == set(wanted)
    for pid, resource in resources.items():
        original = loaded.data.get(f"Patient/{pid}") or {}
        # the hub adds one element the fixture lacks: the link to the person's master record (issue 16)
        assert "link" in resource or summary == "text"
        assert set(resource) - {"link"} == kept(original) | {"meta"}, pid
        assert all(resource[k] == original[k] for k in resource if k not in ("meta", "link"))


def test_elements_keeps_the_asked_elements(loaded: Loaded) -> None:
    """``_elements``: the asked elements (a choice by its base name) plus only what R4 says a server should keep."""
    wanted = (P_SUMIKO, P_DEVIN, "searchpatient1", "searchpatient4")
    found = search(loaded.client, f"/Patient?_id={','.join(wanted)}&_elements=gender,birthDate,multipleBirth")
    resources = {e["resource"]["id"]: e["resource"] for e in found.entries("match")}
    assert set(resources) == set(wanted)
    for pid, resource in resources.items():
        original = loaded.data.get(f"Patient/{pid}") or {}
        asked = {k for k in ("gender", "birthDate", "multipleBirthBoolean", "multipleBirthInteger") if k in original}
        assert asked <= set(resource) <= asked | PATIENT_MODIFIERS | {"resourceType", "id", "meta"}, pid
        assert all(resource[k] == original[k] for k in asked)
    assert any("multipleBirthBoolean" in r for r in resources.values())


# ------------------------------------------------------------------------------------ other parameters
def test_last_updated_splits_the_two_loads(loaded: Loaded) -> None:
    """Patients written before the recorded instant are the SearchDataBatch ones, after it the Synthea ones."""
    synthea = {json.loads(line)["id"] for line in fixture_path(SYNTHEA, "Patient.000.ndjson").read_text().splitlines()}
    patients = set(loaded.data.by_type["Patient"])
    before = search(loaded.client, "/Patient?" + urlencode({"_lastUpdated": f"lt{loaded.between}"}))
    after = search(loaded.client, "/Patient?" + urlencode({"_lastUpdated": f"ge{loaded.between}"}))
    assert set(before.ids()) == patients - synthea
    assert set(after.ids()) == synthea


def test_unknown_parameter_is_ignored_and_reported(loaded: Loaded) -> None:
    """``foo`` is not a Patient parameter: the other criteria still apply, an outcome names it, self omits it."""
    found = search(loaded.client, "/Patient?gender=male&foo=bar")
    assert set(found.ids()) == loaded.data.ids("Patient", lambda r: r.get("gender") == "male")
    outcomes = [e["resource"] for e in found.entries("outcome")]
    assert len(outcomes) == 1 and outcomes[0]["resourceType"] == "OperationOutcome"
    assert "foo" in json.dumps(outcomes[0])
    used = dict(parse_qsl(urlsplit(link(found.bundles[0], "self") or "").query))
    assert used.get("gender") == "male" and "foo" not in used


def test_unknown_parameter_is_refused_when_strict(loaded: Loaded) -> None:
    response = loaded.client.get("/Patient?gender=male&foo=bar", headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome" and "foo" in response.text


def test_system_search_over_two_types(loaded: Loaded) -> None:
    """``GET /?_type=Patient,Practitioner&given=sarah`` finds both kinds of Sarah and nothing else."""
    d = loaded.data
    expected = {f"{rtype}/{i}" for rtype in ("Patient", "Practitioner")
                for i in d.ids(rtype, lambda r: starts([g for n in r.get("name", []) for g in n.get("given", [])],
                                                       "sarah"))}
    found = search(loaded.client, "/?_type=Patient,Practitioner&given=sarah")
    assert sorted(found.refs()) == sorted(expected)
    assert {ref.split("/")[0] for ref in expected} == {"Patient", "Practitioner"}


def test_system_search_without_type_covers_every_type(loaded: Loaded) -> None:
    """Without ``_type`` a system search looks in every type: ``_id`` finds a Patient and an Observation."""
    found = search(loaded.client, "/?_id=searchpatient1,searchobservation2,no-such-id")
    expected = {ref for ref in ("Patient/searchpatient1", "Observation/searchobservation2", "Patient/no-such-id")
                if loaded.data.get(ref) is not None}
    assert sorted(found.refs()) == sorted(expected)


def test_system_search_by_post_with_paging(loaded: Loaded) -> None:
    """``POST /_search`` with a form body, over two types, three entries a page: every match once."""
    d = loaded.data
    expected = {f"{rtype}/{i}" for rtype in ("Condition", "Immunization")
                for i in d.ids(rtype, for_patient(P_CORRIN))}
    found = search(loaded.client, "/_search",
                   form=[("_type", "Condition,Immunization"), ("patient", f"Patient/{P_CORRIN}"), ("_count", "3")])
    refs_found = found.refs()
    assert len(found.bundles) > 1
    assert len(refs_found) == len(set(refs_found)) and set(refs_found) == expected
    assert found.bundles[0]["total"] == len(expected)


def test_type_search_by_post_form(loaded: Loaded) -> None:
    """``POST /Encounter/_search``: the form's parameters (a repeated one is AND) count like a query's."""
    expected = loaded.data.ids("Encounter", for_patient(P_SUMIKO, lambda r: date_matches(r["period"], "ge1984-11-01")
                                                        and date_matches(r["period"], "lt1985")))
    found = search(loaded.client, "/Encounter/_search",
                   form=[("patient", P_SUMIKO), ("date", "ge1984-11-01"), ("date", "lt1985")])
    assert expected and set(found.ids()) == expected
