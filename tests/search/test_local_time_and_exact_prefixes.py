"""Issue 21, search correctness: exact comparisons for number and quantity prefixes, and local time.

R4 search.html#number: ``gt100`` is "greater than exactly 100", ``lt``/``le``/``ge`` likewise; only ``eq``,
``ne`` and ``ap`` use the implicit precision range. Dates and times written without a zone (stored or searched)
are read in the hub's zone (``FHIR_HUB_TIME_ZONE``, Asia/Ho_Chi_Minh by default, +07:00 since 1975).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_hub.auth.caller import Caller
from fhir_hub.config import ConfigError, Settings
from fhir_hub.fhir.instant import DEFAULT_TIME_ZONE, time_zone_name, to_instant, use_time_zone
from fhir_hub.hub import running_hub
from fhir_hub.search.indexing import index_format
from fhir_hub.search.normalize import date_range, decimal_of_range, decimal_range
from fhir_hub.store.index_docs import entries_in
from fhir_hub.store.writer import Update

TAG = "urn:fhir-hub:test:exact-prefixes"


def create(client: TestClient, resource: dict[str, Any], tag: str) -> str:
    resource = {**resource, "meta": {"tag": [{"system": TAG, "code": tag}]}}
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    rid: str = response.json()["id"]
    return rid


def found(client: TestClient, rtype: str, tag: str, *params: tuple[str, str]) -> set[str]:
    response = client.get(f"/{rtype}", params=[*params, ("_tag", f"{TAG}|{tag}"), ("_count", "100")],
                          headers={"Prefer": "handling=strict"})
    assert response.status_code == 200, response.text
    return {entry["resource"]["id"] for entry in response.json().get("entry", [])
            if entry.get("search", {}).get("mode") == "match"}


def observation(**value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "exact prefixes"}, **value}


# ----------------------------------------------------------------------------------- number, quantity
def test_gt_compares_with_the_value_exactly(client: TestClient) -> None:
    """The issue's case: ``value-quantity=gt7`` missed 7.4 (inside 7's precision range) while ``ge7`` found it."""
    tag = uuid.uuid4().hex
    ids = {value: create(client, observation(valueQuantity={"value": value, "unit": "mmol/L"}), tag)
           for value in (6.4, 7, 7.4, 7.5, 8)}
    assert found(client, "Observation", tag, ("value-quantity", "gt7")) == {ids[7.4], ids[7.5], ids[8]}
    assert found(client, "Observation", tag, ("value-quantity", "ge7")) == {ids[7], ids[7.4], ids[7.5], ids[8]}
    assert found(client, "Observation", tag, ("value-quantity", "lt7")) == {ids[6.4]}
    assert found(client, "Observation", tag, ("value-quantity", "le7")) == {ids[6.4], ids[7]}
    # eq and ne keep the implicit range: 7 is [6.5, 7.5), which holds 7 and 7.4, not 7.5
    assert found(client, "Observation", tag, ("value-quantity", "eq7")) == {ids[7], ids[7.4]}
    assert found(client, "Observation", tag, ("value-quantity", "ne7")) == {ids[6.4], ids[7.5], ids[8]}


def test_a_number_parameter_and_a_composite_compare_exactly_too(client: TestClient) -> None:
    tag = uuid.uuid4().hex
    low = create(client, {"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/x"},
                          "prediction": [{"probabilityDecimal": 0.24}]}, tag)
    high = create(client, {"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/x"},
                           "prediction": [{"probabilityDecimal": 0.26}]}, tag)
    assert found(client, "RiskAssessment", tag, ("probability", "gt0.2")) == {low, high}
    assert found(client, "RiskAssessment", tag, ("probability", "gt0.25")) == {high}
    assert found(client, "RiskAssessment", tag, ("probability", "le0.24")) == {low}
    loinc = {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}
    systolic = create(client, observation(code=loinc, valueQuantity={"value": 140.4}), tag)
    assert found(client, "Observation", tag, ("code-value-quantity", "http://loinc.org|8480-6$gt140")) == {systolic}
    assert found(client, "Observation", tag, ("code-value-quantity", "http://loinc.org|8480-6$eq140")) == {systolic}


def test_a_stored_value_compares_as_written() -> None:
    """The index keeps a number's range; the value it was written as comes back exactly (``5.40`` stays 5.40)."""
    for text in ("7", "7.4", "5.40", "-0.50", "0.001", "1000.0", "123456789.12345", "1E+3", "0"):
        low, high = decimal_range(text) or (0.0, 0.0)
        assert decimal_of_range(low, high) == Decimal(text)
        assert str(decimal_of_range(low, high)) == str(Decimal(text))


PREFIXES = ("", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
STORED = ("100", "100.5", "99.5", "99", "101", "5.4", "5.40", "5.35", "5.45", "0.001", "-3", "-2.5", "7", "7.4",
          "12.25", "0", "1000.0")


def expected_ids(stored: dict[str, str], prefix: str, text: str) -> set[str]:
    """A tiny reference written from search.html#number and #prefix: gt/lt/ge/le compare the values exactly;
    eq, ne, sa and eb compare the ranges of implied precision ([v - half, v + half))."""
    searched = Decimal(text)
    half = Decimal(5).scaleb(searched.as_tuple().exponent - 1)  # type: ignore[operator]
    s_low, s_high = searched - half, searched + half

    def matches(value: str) -> bool:
        v = Decimal(value)
        v_half = Decimal(5).scaleb(v.as_tuple().exponent - 1)  # type: ignore[operator]
        low, high = v - v_half, v + v_half
        contained = s_low <= low and high <= s_high
        return {"eq": contained, "ne": not contained, "gt": v > searched, "lt": v < searched,
                "ge": v >= searched, "le": v <= searched, "sa": low >= s_high, "eb": high <= s_low}[prefix or "eq"]
    return {rid for rid, value in stored.items() if matches(value)}


@pytest.fixture(scope="module")
def number_pool(module_client: TestClient) -> dict[str, str]:
    pool = {}
    for value in STORED:  # posted as JSON text, so the value keeps the precision it is written with
        body = ('{"resourceType": "Observation", "status": "final", "code": {"text": "pool"}, "meta": {"tag": '
                f'[{{"system": "{TAG}", "code": "pool"}}]}}, "valueQuantity": {{"value": {value}}}}}')
        response = module_client.post("/Observation", content=body, headers={"Content-Type": "application/fhir+json"})
        assert response.status_code == 201, response.text
        pool[response.json()["id"]] = value
    return pool


@st.composite
def numbers(draw: st.DrawFn) -> str:
    """Near the stored values, at 0 to 3 decimals, so values sit on, inside and beside each other's ranges."""
    base = Decimal(draw(st.sampled_from(STORED) | st.integers(-5, 110).map(str)))
    decimals = draw(st.integers(0, 3))
    step = Decimal(1).scaleb(-decimals)
    number = base.quantize(step) + step * draw(st.integers(-2, 2))
    return f"{abs(number) if number == 0 else number:.{decimals}f}"


@settings(max_examples=150, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), text=numbers())
def test_number_prefixes_against_a_reference(module_client: TestClient, number_pool: dict[str, str], prefix: str,
                                             text: str) -> None:
    got = found(module_client, "Observation", "pool", ("value-quantity", prefix + text))
    expected = expected_ids(number_pool, prefix, text)
    assert got == expected, (f"value-quantity={prefix}{text}: missing {sorted(number_pool[r] for r in expected - got)}"
                             f", extra {sorted(number_pool[r] for r in got - expected)}")


# ------------------------------------------------------------------------------------------- local time
def test_a_date_is_the_local_day(client: TestClient) -> None:
    """The issue's case: ``date=2025-01-02`` missed ``2025-01-02T01:00:00+07:00`` (18:00 UTC on the 1st)."""
    tag = uuid.uuid4().hex
    early = create(client, observation(effectiveDateTime="2025-01-02T01:00:00+07:00"), tag)
    late = create(client, observation(effectiveDateTime="2025-01-02T23:30:00+07:00"), tag)
    utc_next_day = create(client, observation(effectiveDateTime="2025-01-02T17:00:00Z"), tag)  # 00:00 on the 3rd here
    assert found(client, "Observation", tag, ("date", "2025-01-02")) == {early, late}
    assert found(client, "Observation", tag, ("date", "2025-01-03")) == {utc_next_day}
    assert found(client, "Observation", tag, ("date", "2025-01")) == {early, late, utc_next_day}
    # a search time without a zone is local too
    assert found(client, "Observation", tag, ("date", "ge2025-01-02T23:00")) == {late, utc_next_day}
    assert found(client, "Observation", tag, ("date", "lt2025-01-02T02:00")) == {early}


def test_a_stored_local_date_is_the_local_day(client: TestClient) -> None:
    tag = uuid.uuid4().hex
    born = create(client, {"resourceType": "Patient", "birthDate": "2025-01-02"}, tag)
    assert found(client, "Patient", tag, ("birthdate", "2025-01-02")) == {born}
    assert found(client, "Patient", tag, ("birthdate", "ge2025-01-01T17:00:00Z")) == {born}
    assert found(client, "Patient", tag, ("birthdate", "sa2025-01-01T16:59:59Z")) == {born}
    assert found(client, "Patient", tag, ("birthdate", "eb2025-01-02T17:00:00Z")) == {born}
    assert found(client, "Patient", tag, ("birthdate", "gt2025-01-02T17:00:00Z")) == set()


def test_the_zone_keeps_its_history() -> None:
    """Saigon kept +08:00 from 1959 to 1975: a birth date of 1960 is the day as it was lived there."""
    low, high = date_range("1960-05-01") or (0, 0)
    assert (to_instant(low), to_instant(high)) == ("1960-04-30T16:00:00.000000+00:00",
                                                   "1960-05-01T15:59:59.999999+00:00")


def test_the_zone_is_a_setting(tmp_path: Path) -> None:
    assert Settings.from_env({}).time_zone == "Asia/Ho_Chi_Minh"
    assert Settings.from_env({"FHIR_HUB_TIME_ZONE": "Europe/Paris"}).time_zone == "Europe/Paris"
    with pytest.raises(ConfigError, match="FHIR_HUB_TIME_ZONE"):
        Settings.from_env({"FHIR_HUB_TIME_ZONE": "Mars/Olympus_Mons"})


@pytest.fixture
def restore_zone() -> Iterator[None]:
    yield
    use_time_zone(DEFAULT_TIME_ZONE)


@pytest.mark.anyio
async def test_a_changed_zone_recomputes_the_index(settings: Settings, restore_zone: None) -> None:
    """The index's meaning depends on the zone: a start in another zone recomputes every entry before serving."""
    async with running_hub(settings) as hub:
        await hub.writer.commit(Update("Patient", "p", {"resourceType": "Patient", "id": "p",
                                                        "birthDate": "2025-01-02"}), caller=Caller.hub("test"))
        local = [e for d in await hub.store.index.find({"r": "Patient/p"}).to_list() for e in entries_in(d)
                 if "|birthdate|" in e.key]
        assert await hub.store.index_format() == index_format("Asia/Ho_Chi_Minh")
    async with running_hub(settings.with_(time_zone="UTC")) as hub:
        assert time_zone_name() == "UTC"
        assert await hub.store.index_format() == index_format("UTC")
        utc = [e for d in await hub.store.index.find({"r": "Patient/p"}).to_list() for e in entries_in(d)
               if "|birthdate|" in e.key]
        assert [e.low for e in utc] == [e.low + 7 * 3_600_000_000 for e in local if e.low is not None]
