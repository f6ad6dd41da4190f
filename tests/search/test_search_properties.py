"""Search answers of the running server against a reference written from FHIR R4 search.html.

The server is driven over HTTP (``module_client``); the expected ids come from a plain reading of the
specification written out below, never from ``fhir_hub.search``, so a disagreement means either the server or
that reading is wrong, not that both share a mistake. Fixed pools of resources are written once per module and
hypothesis generates only the queries; where the stored values themselves are what is tested (tokens that need
escaping, dates at the ends of the calendar) each example writes its own resources under its own ``_tag``.
Every search carries the ``_tag`` of its pool, so pools never see each other's resources.
"""

from __future__ import annotations

import calendar
import json
import math
import random
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, given, settings
from hypothesis import strategies as st

TAG_SYSTEM = "urn:fhir-hub:test:search-properties"
UCUM = "http://unitsofmeasure.org"
STRICT = {"Prefer": "handling=strict"}  # a misspelt parameter must fail the test, not be ignored
Ids = set[str]


# ------------------------------------------------------------------------------------------ HTTP helpers
def escape(value: str) -> str:
    """A search value escaped as search.html#escaping asks (``\\``, ``,``, ``|`` and ``$``)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def tagged(resource: dict[str, Any], tag: str) -> dict[str, Any]:
    return {**resource, "meta": {"tag": [{"system": TAG_SYSTEM, "code": tag}]}}


def create(client: TestClient, resource: dict[str, Any]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, f"{json.dumps(resource, ensure_ascii=False)} -> {response.text}"
    return str(response.json()["id"])


def create_raw(client: TestClient, rtype: str, body: str) -> str:
    """Posts JSON text as written, so decimals keep the precision their text gives them."""
    response = client.post(f"/{rtype}", content=body.encode(), headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 201, f"{body} -> {response.text}"
    return str(response.json()["id"])


def search(client: TestClient, rtype: str, tag: str, params: list[tuple[str, str]]) -> Ids:
    """The ids a type-level search matches within one tagged pool (one page: every pool is under _count)."""
    query = [("_tag", f"{TAG_SYSTEM}|{tag}"), *params, ("_count", "1000")]
    response = client.get(f"/{rtype}", params=query, headers=STRICT)
    assert response.status_code == 200, (params, response.text)
    bundle = response.json()
    assert not [link for link in bundle.get("link", []) if link.get("relation") == "next"], "pool over one page"
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"}


def differences(got: Ids, expected: Ids, stored: Mapping[str, object]) -> str:
    """What a failing comparison prints: the stored values concerned, not the ids the server gave them."""
    def show(ids: Ids) -> list[str]:
        return sorted(str(stored.get(rid, rid)) for rid in ids)

    return f"missed {show(expected - got)}, wrongly matched {show(got - expected)}"


# ------------------------------------------------------------------------------- reference: date ranges
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?")
_EPOCH_DAY = date(1970, 1, 1).toordinal()
SECOND = 1_000_000
DAY = 86_400 * SECOND
LOCAL_OFFSET = 7 * 3600 * SECOND  # the hub's zone for values without one (FHIR_HUB_TIME_ZONE's default)
Span = tuple[float, float]  # [start, end) in microseconds since 1970 UTC; +-inf for an open Period end


def date_span(text: str) -> Span:
    """The half-open range a FHIR date, dateTime or search date denotes at its precision (search.html#date).

    ``2020`` is the whole year, ``2020-02`` the whole month, ``...T10:00`` the whole minute; a value without a
    zone is local time in the hub's zone, Asia/Ho_Chi_Minh, which has been +07:00 since 1975 (for the pool's
    years; the tests of far years compare a value only with itself, where any offset cancels out).
    """
    m = _DATE.fullmatch(text)
    assert m is not None, text
    year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
    start = (date(year, month, day).toordinal() - _EPOCH_DAY) * DAY
    if m[4] is None:
        days = 1 if m[3] else calendar.monthrange(year, month)[1] if m[2] else 366 if calendar.isleap(year) else 365
        return start - LOCAL_OFFSET, start + days * DAY - LOCAL_OFFSET
    start += (int(m[4]) * 3600 + int(m[5]) * 60 + int(m[6] or 0)) * SECOND
    if m[7]:
        start += int(m[7].ljust(6, "0"))
        length = 10 ** (6 - len(m[7]))
    else:
        length = SECOND if m[6] else 60 * SECOND
    if m[8] is None:
        start -= LOCAL_OFFSET
    elif m[8] != "Z":
        offset = (int(m[8][1:3]) * 60 + int(m[8][4:6])) * 60 * SECOND
        start -= offset if m[8][0] == "+" else -offset
    return start, start + length


def period_span(period: dict[str, str]) -> Span:
    """A Period runs from the start of its start to the end of its end; a missing end is unbounded."""
    start = date_span(period["start"])[0] if "start" in period else -math.inf
    end = date_span(period["end"])[1] if "end" in period else math.inf
    return start, end


def prefix_matches(prefix: str, target: tuple[Any, Any], searched: tuple[Any, Any]) -> bool:
    """search.html#prefix, with both ranges half-open ``[start, end)``."""
    (t_start, t_end), (s_start, s_end) = target, searched
    contained = s_start <= t_start and t_end <= s_end
    return {
        "eq": contained,
        "ne": not contained,
        "gt": t_end > s_end,  # the range above the search value intersects the target's
        "lt": t_start < s_start,  # the range below the search value intersects the target's
        "ge": t_end > s_end or contained,
        "le": t_start < s_start or contained,
        "sa": t_start >= s_end,  # no overlap, and the target lies above
        "eb": t_end <= s_start,  # no overlap, and the target lies below
    }[prefix]


PREFIXES = ("", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")


def split_prefix(value: str) -> tuple[str, str]:
    return (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)


# ----------------------------------------------------------------------------------------- date pool
BIRTH_DATES = ("2019", "2020", "2021", "2020-01", "2020-02", "2020-06", "2020-12", "2021-01", "2019-12-31",
               "2020-01-01", "2020-02-28", "2020-02-29", "2020-03-01", "2020-06-15", "2020-06-16", "2020-12-31",
               "2021-01-01")
EFFECTIVE_TIMES = ("2020", "2020-06", "2020-06-15", "2020-06-15T00:00:00Z", "2020-06-15T23:59:59+07:00",
                   "2020-06-15T12:30:00-05:00", "2020-06-15T12:30:15.5Z", "2020-06-15T07:00:00.250+07:00",
                   "2020-06-14T22:00:00-03:00", "2020-12-31T23:59:59.999Z", "2021-01-01T06:59:59+07:00",
                   "2020-01-01T00:00:00+14:00", "2019-12-31T23:30:00-12:00", "2020-02-29T12:00:00Z",
                   "2020-06-15T17:00:00+00:00", "2020-06-16T00:00:00+07:00")
EFFECTIVE_PERIODS: tuple[dict[str, str], ...] = (
    {"start": "2020-06-15"},
    {"start": "2020-06-15T10:00:00Z"},
    {"end": "2020-06-15T12:00:00Z"},
    {"end": "2020"},
    {"start": "2020-06", "end": "2020-07"},
    {"start": "2020-06-15T08:00:00+07:00", "end": "2020-06-16T08:00:00+07:00"},
    {"start": "2020-06-15T10:00:00Z", "end": "2020-06-15T10:00:00Z"},
    {"start": "2019", "end": "2021"},
    {"start": "2020-02-29", "end": "2020-03-01"},
    {"start": "2020-06-15T23:00:00-05:00", "end": "2020-06-16T01:00:00-05:00"},
    {"start": "2020-12-31T20:00:00Z", "end": "2021-01-01T04:00:00Z"},
)


@dataclass(frozen=True)
class DatePool:
    tag: str
    patients: dict[str, Span]  # id -> birthDate range
    observations: dict[str, Span]  # id -> effective[x] range
    stored: dict[str, str]  # id -> the value as written, for failure messages


def observation(**value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "search property pool"}, **value}


@pytest.fixture(scope="module")
def date_pool(module_client: TestClient) -> DatePool:
    """Written once per module: hypothesis then only generates queries, each a single request."""
    tag = "dates"
    stored: dict[str, str] = {}
    patients: dict[str, Span] = {}
    observations: dict[str, Span] = {}
    for text in BIRTH_DATES:
        rid = create(module_client, tagged({"resourceType": "Patient", "birthDate": text}, tag))
        patients[rid], stored[rid] = date_span(text), text
    for text in EFFECTIVE_TIMES:
        rid = create(module_client, tagged(observation(effectiveDateTime=text), tag))
        observations[rid], stored[rid] = date_span(text), text
    for period in EFFECTIVE_PERIODS:
        rid = create(module_client, tagged(observation(effectivePeriod=period), tag))
        observations[rid], stored[rid] = period_span(period), f"Period{period}"
    return DatePool(tag, patients, observations, stored)


def near(common: list[int], low: int, high: int) -> st.SearchStrategy[int]:
    """Mostly the values where the pool has its edges, sometimes anything in range."""
    return st.one_of(st.sampled_from([c for c in common if low <= c <= high]), st.integers(low, high))


@st.composite
def search_dates(draw: st.DrawFn, precisions: tuple[str, ...] = ("year", "month", "day", "minute", "second",
                                                                 "fraction")) -> str:
    """A search date at one of the precisions of search.html#date, near the pool's values."""
    precision = draw(st.sampled_from(precisions))
    year = draw(st.sampled_from([2019, 2020, 2021]) | st.integers(2018, 2022))
    text = f"{year:04d}"
    if precision == "year":
        return text
    month = draw(near([1, 2, 3, 6, 7, 12], 1, 12))
    text += f"-{month:02d}"
    if precision == "month":
        return text
    last = calendar.monthrange(year, month)[1]
    text += f"-{draw(near([1, 14, 15, 16, 28, 29, 30, 31], 1, last)):02d}"
    if precision == "day":
        return text
    text += f"T{draw(near([0, 5, 7, 10, 12, 17, 22, 23], 0, 23)):02d}:{draw(near([0, 30, 59], 0, 59)):02d}"
    if precision != "minute":
        text += f":{draw(near([0, 15, 59], 0, 59)):02d}"
    if precision == "fraction":
        text += "." + draw(st.sampled_from(["5", "25", "250", "999", "000001"]))
    return text + draw(st.sampled_from(["", "Z", "+00:00", "+07:00", "-05:00", "+14:00", "-12:00"]))


date_criteria = st.tuples(st.sampled_from(PREFIXES), search_dates())


def date_expected(candidates: dict[str, Span], alternatives: list[str]) -> Ids:
    """Ids whose range meets any one of the comma-separated alternatives (each with its own prefix)."""
    spans = [(prefix, date_span(text)) for prefix, text in map(split_prefix, alternatives)]
    return {rid for rid, span in candidates.items() if any(prefix_matches(p, span, s) for p, s in spans)}


@settings(max_examples=250, deadline=None)
@given(rtype=st.sampled_from(["Patient", "Observation"]), criterion=date_criteria)
def test_date_prefixes(module_client: TestClient, date_pool: DatePool, rtype: str, criterion: tuple[str, str]) -> None:
    """Every prefix at every precision, on dates, dateTimes with and without zones and open and closed Periods."""
    value = criterion[0] + criterion[1]
    param, candidates = ("birthdate", date_pool.patients) if rtype == "Patient" else ("date", date_pool.observations)
    got, expected = search(module_client, rtype, date_pool.tag, [(param, value)]), date_expected(candidates, [value])
    assert got == expected, f"{param}={value}: {differences(got, expected, date_pool.stored)}"


@settings(max_examples=120, deadline=None)
@given(rtype=st.sampled_from(["Patient", "Observation"]),
       criteria=st.lists(st.lists(date_criteria, min_size=1, max_size=3), min_size=1, max_size=2))
def test_date_or_and(module_client: TestClient, date_pool: DatePool, rtype: str,
                     criteria: list[list[tuple[str, str]]]) -> None:
    """Comma-separated values are OR'd, each keeping its own prefix; repeated parameters are AND'd (search.html)."""
    param, candidates = ("birthdate", date_pool.patients) if rtype == "Patient" else ("date", date_pool.observations)
    params = [(param, ",".join(prefix + text for prefix, text in alternatives)) for alternatives in criteria]
    expected = set(candidates)
    for _, value in params:
        expected &= date_expected(candidates, value.split(","))
    got = search(module_client, rtype, date_pool.tag, params)
    assert got == expected, f"{params}: {differences(got, expected, date_pool.stored)}"


@settings(max_examples=60, deadline=None)
@given(rtype=st.sampled_from(["Patient", "Observation"]),
       value=search_dates(("year", "month", "day")))
def test_date_ap_far_from_the_boundary(module_client: TestClient, date_pool: DatePool, rtype: str, value: str) -> None:
    """``ap``'s width is the server's choice (10% of the distance to now, at least a day), so only what holds for
    any such width is checked: what ``eq`` finds, ``ap`` finds; what lies well beyond the width, it does not."""
    param, candidates = ("birthdate", date_pool.patients) if rtype == "Patient" else ("date", date_pool.observations)
    low, high = date_span(value)
    width = max(DAY, abs(time.time() * SECOND - low) / 10)
    got = search(module_client, rtype, date_pool.tag, [(param, "ap" + value)])
    must = date_expected(candidates, [value])
    must_not = {rid for rid, (start, end) in candidates.items() if end <= low - 2 * width or start >= high + 2 * width}
    assert must <= got, f"{param}=ap{value}: {differences(got, must, date_pool.stored)}"
    assert not got & must_not, f"{param}=ap{value}: far away {sorted(date_pool.stored[r] for r in got & must_not)}"


# Dates anywhere in FHIR's calendar (years 0001 to 9999), written per example. The first and last years get their
# own share of examples: there a range's end, or a zone offset, leaves the years a Python datetime can hold.
any_dates = st.dates() | st.dates(max_value=date(1, 12, 31)) | st.dates(min_value=date(9999, 1, 1))
any_date_times = (st.datetimes() | st.datetimes(max_value=datetime(1, 1, 2))
                  | st.datetimes(min_value=datetime(9999, 12, 30)))


@settings(max_examples=60, deadline=None)
@given(day=any_dates, precision=st.sampled_from(["year", "month", "day"]))
def test_any_birth_date_is_stored_and_found(module_client: TestClient, day: date, precision: str) -> None:
    """A Patient born on any valid FHIR date (at any precision) is accepted and found by eq, le, ge, not sa, eb."""
    text, tag = day.isoformat()[: {"year": 4, "month": 7, "day": 10}[precision]], uuid.uuid4().hex
    rid = create(module_client, tagged({"resourceType": "Patient", "birthDate": text}, tag))
    for prefix in PREFIXES:
        expected = {rid} if prefix_matches(prefix or "eq", date_span(text), date_span(text)) else set()
        assert search(module_client, "Patient", tag, [("birthdate", prefix + text)]) == expected, prefix + text


@settings(max_examples=60, deadline=None)
@given(moment=any_date_times, zone=st.sampled_from(["Z", "+00:00", "+07:00", "-05:30", "+14:00", "-12:00"]))
def test_any_date_time_is_stored_and_found(module_client: TestClient, moment: datetime, zone: str) -> None:
    """An Observation at any valid FHIR dateTime (seconds and a zone, as R4 requires) is accepted and found."""
    text, tag = moment.replace(microsecond=0).isoformat() + zone, uuid.uuid4().hex
    rid = create(module_client, tagged(observation(effectiveDateTime=text), tag))
    for prefix in PREFIXES:
        expected = {rid} if prefix_matches(prefix or "eq", date_span(text), date_span(text)) else set()
        assert search(module_client, "Observation", tag, [("date", prefix + text)]) == expected, prefix + text


# -------------------------------------------------------------------------------------- strings
FAMILIES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
            "Dương", "Lý", "Nguyen", "Dang", "Le")
GIVENS = ("Văn", "Thị", "Minh", "Anh", "Đức", "Hương", "Thủy", "Ngọc", "Quỳnh", "Tuấn", "Dũng", "Hà", "Hạnh",
          "Đào", "Lan", "An", "Ân", "Thị Mai")
NAME_PREFIXES = ("Bs.", "TS.", "Ông", "Bà")
NAME_SUFFIXES = ("(con)", "Jr.")
UNSTORED = ("Nguyệt", "Trương", "Xuân", "Đinh", "zz")


def strip_marks(text: str) -> str:
    """What a keyboard without Vietnamese input gives: the letters without their combining marks."""
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def fold(text: str) -> str:
    """The reference's case-, accent- and diacritic-insensitive form (``đ`` is a letter of its own in Unicode,
    so it is mapped to ``d`` by hand); runs of whitespace count as one space, and ends are trimmed."""
    text = text.replace("đ", "d").replace("Đ", "d")
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return " ".join(text.casefold().split())


STYLES: dict[str, Callable[[str], str]] = {
    "as written": lambda t: t,
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "swapcase": str.swapcase,
    "no marks": strip_marks,
    "no marks, d for đ": lambda t: strip_marks(t).replace("đ", "d").replace("Đ", "D"),
    "decomposed": lambda t: unicodedata.normalize("NFD", t),
    "composed": lambda t: unicodedata.normalize("NFC", t),
    "padded": lambda t: f"  {t} ",
    "spaced": lambda t: t.replace(" ", "   "),
}
STORED_STYLES = ("as written", "as written", "as written", "upper", "lower", "decomposed", "padded", "no marks")


def human_name(rng: random.Random) -> dict[str, Any]:
    def style(text: str) -> str:
        return STYLES[rng.choice(STORED_STYLES)](text)

    family = style(rng.choice(FAMILIES))
    given = [style(g) for g in rng.sample(GIVENS, rng.randint(1, 2))]
    name: dict[str, Any] = {"family": family, "given": given}
    if rng.random() < 0.5:
        name["text"] = (" " * rng.randint(1, 3)).join(part.strip() for part in [family, *given])
    if rng.random() < 0.25:
        name["prefix"] = [rng.choice(NAME_PREFIXES)]
    if rng.random() < 0.15:
        name["suffix"] = [rng.choice(NAME_SUFFIXES)]
    return name


def name_pool() -> list[list[dict[str, Any]]]:
    """The names of each pool Patient: fixed (seeded), so strategies can draw search values from them."""
    rng = random.Random(20240611)
    return [[human_name(rng) for _ in range(1 if rng.random() < 0.8 else 2)] for _ in range(40)]


NAMES = name_pool()


def name_parts(names: list[dict[str, Any]], param: str) -> Iterator[str]:
    """The strings a parameter covers: ``name`` any part of a HumanName (R4 Patient ``name``), or one element."""
    elements = {"name": ("text", "family", "given", "prefix", "suffix"), "family": ("family",),
                "given": ("given",)}[param]
    for name in names:
        for element in elements:
            value = name.get(element)
            yield from value if isinstance(value, list) else [value] if value else []


STORED_PARTS = sorted({part for names in NAMES for part in name_parts(names, "name")})


@pytest.fixture(scope="module")
def string_pool(module_client: TestClient) -> dict[str, list[dict[str, Any]]]:
    """The Patients of ``NAMES``, written once per module (id -> names)."""
    return {create(module_client, tagged({"resourceType": "Patient", "name": names}, "strings")): names
            for names in NAMES}


@st.composite
def string_values(draw: st.DrawFn, modifier: str) -> str:
    """A stored name part (or one never stored), cut and restyled the way people type names."""
    source = draw(st.sampled_from(STORED_PARTS) | st.sampled_from(UNSTORED))
    start = draw(st.integers(0, len(source) - 1)) if modifier == ":contains" else 0
    end = draw(st.just(len(source)) | st.integers(start + 1, len(source)))
    value = source[start:end]
    for style in draw(st.lists(st.sampled_from(sorted(STYLES)), max_size=2)):
        value = STYLES[style](value)
    assume(fold(value))
    return value


def string_matches(modifier: str, part: str, value: str) -> bool:
    """search.html#string: starts with, ignoring case and accents; ``:contains`` anywhere; ``:exact`` as written."""
    if modifier == ":exact":
        return part == value
    if modifier == ":contains":
        return fold(value) in fold(part)
    return fold(part).startswith(fold(value))


@st.composite
def string_criteria(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    modifier = draw(st.sampled_from(["", ":contains", ":exact"]))
    return (draw(st.sampled_from(["name", "family", "given"])), modifier,
            draw(st.lists(string_values(modifier), min_size=1, max_size=2)))


@settings(max_examples=250, deadline=None)
@given(criterion=string_criteria())
def test_strings(module_client: TestClient, string_pool: dict[str, list[dict[str, Any]]],
                 criterion: tuple[str, str, list[str]]) -> None:
    """Vietnamese names in any case, with or without diacritics, composed or not, with extra spaces."""
    param, modifier, values = criterion
    got = search(module_client, "Patient", "strings", [(param + modifier, ",".join(map(escape, values)))])
    expected = {rid for rid, names in string_pool.items()
                if any(string_matches(modifier, part, v) for part in name_parts(names, param) for v in values)}
    assert got == expected, f"{param}{modifier}={values}: {differences(got, expected, string_pool)}"


# ---------------------------------------------------------------------------------------- tokens
token_text = st.text(alphabet="ab,|$\\:ễ", min_size=1, max_size=4)
systems = st.sampled_from(["urn:a", "urn:a|b", "http://x.vn/a,b", "urn:a\\", "urn:$"]) | token_text.map("urn:".__add__)
identifiers = st.fixed_dictionaries({"value": token_text}, optional={"system": systems})


@dataclass(frozen=True)
class TokenQuery:
    form: str  # "system|value", "|value", "system|" or "value"
    system: str
    value: str

    def text(self) -> str:
        return {"system|value": f"{escape(self.system)}|{escape(self.value)}", "|value": f"|{escape(self.value)}",
                "system|": f"{escape(self.system)}|", "value": escape(self.value)}[self.form]

    def matches(self, identifier: dict[str, str]) -> bool:
        """search.html#token: ``|value`` is a value with no system; ``system|`` any value in the system."""
        system, value = identifier.get("system"), identifier["value"]
        return {"system|value": system == self.system and value == self.value,
                "|value": system is None and value == self.value,
                "system|": system == self.system,
                "value": value == self.value}[self.form]


@st.composite
def token_queries(draw: st.DrawFn, stored: list[dict[str, str]]) -> TokenQuery:
    stored_systems = [i["system"] for i in stored if "system" in i]
    stored_values = [i["value"] for i in stored]
    system = draw(st.sampled_from(stored_systems) | systems if stored_systems else systems)
    value = draw(st.sampled_from(stored_values) | token_text if stored_values else token_text)
    return TokenQuery(draw(st.sampled_from(["system|value", "|value", "system|", "value"])), system, value)


@settings(max_examples=80, deadline=None)
@given(patients=st.lists(st.lists(identifiers, max_size=3), min_size=1, max_size=4), data=st.data())
def test_tokens(module_client: TestClient, patients: list[list[dict[str, str]]], data: st.DataObject) -> None:
    """Identifiers whose systems and values hold ``, | $ \\``, in each query form, OR'd, and with ``:not``."""
    tag = uuid.uuid4().hex
    pool = {create(module_client, tagged({"resourceType": "Patient", "identifier": ids} if ids
                                         else {"resourceType": "Patient"}, tag)): ids for ids in patients}
    stored = [i for ids in patients for i in ids]
    negated = data.draw(st.booleans(), label="not")
    queries = data.draw(st.lists(token_queries(stored), min_size=1, max_size=1 if negated else 3), label="queries")
    param = "identifier:not" if negated else "identifier"
    got = search(module_client, "Patient", tag, [(param, ",".join(q.text() for q in queries))])
    hits = {rid for rid, ids in pool.items() if any(q.matches(i) for q in queries for i in ids)}
    # :not includes the resources that have no identifier at all (search.html#token, modifier :not)
    expected = set(pool) - hits if negated else hits
    assert got == expected, f"{param}={[q.text() for q in queries]}: {differences(got, expected, pool)}"


# ------------------------------------------------------------------------------------- quantities
def decimal_span(text: str) -> tuple[Decimal, Decimal]:
    """search.html#number: a decimal stands for the range of its implied precision, 100 = [99.5, 100.5)."""
    number = Decimal(text)
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)
    return number - half, number + half


UNITS: tuple[dict[str, str], ...] = (
    {"system": UCUM, "code": "mg", "unit": "mg"},
    {"system": UCUM, "code": "g", "unit": "g"},
    {"system": "urn:local-units", "code": "mg", "unit": "milligram"},  # a code needs its system (R4 qty-3)
    {"unit": "mg"},
    {},
    {"system": "http://snomed.info/sct", "code": "mg", "unit": "mg"},
)
CANONICAL_VALUES = ("100", "100.5", "99.5", "99", "101", "5.4", "5.35", "5.45", "5.3", "0.001", "0.5", "-3", "-2.5",
                    "1000", "12.25", "0", "5")
AS_WRITTEN_VALUES = ("100.00", "5.40", "5.400", "0.10", "1.50", "-0.50", "12.250", "1000.0")


@dataclass(frozen=True)
class StoredQuantity:
    value: str  # as written in the JSON
    unit: dict[str, str]


def create_quantities(client: TestClient, tag: str, values: tuple[str, ...]) -> dict[str, StoredQuantity]:
    """Each value twice, with two of the unit forms, posted as JSON text so the value is exactly as written."""
    pool = {}
    for i, value in enumerate(values):
        for unit in (UNITS[i % len(UNITS)], UNITS[(i + 3) % len(UNITS)]):
            quantity = json.dumps({"value": "@VALUE@", **unit}).replace('"@VALUE@"', value)
            body = json.dumps(tagged(observation(), tag))[:-1] + f', "valueQuantity": {quantity}}}'
            pool[create_raw(client, "Observation", body)] = StoredQuantity(value, unit)
    return pool


@pytest.fixture(scope="module")
def quantity_pool(module_client: TestClient) -> dict[str, StoredQuantity]:
    """Values whose text a float prints back unchanged, so only the search logic is under test."""
    return create_quantities(module_client, "quantities", CANONICAL_VALUES)


@pytest.fixture(scope="module")
def precise_quantity_pool(module_client: TestClient) -> dict[str, StoredQuantity]:
    """Values whose trailing zeros carry precision (``5.40``): apart, so losing them fails one test only."""
    return create_quantities(module_client, "quantities-as-written", AS_WRITTEN_VALUES)


@st.composite
def search_numbers(draw: st.DrawFn, near_values: tuple[str, ...]) -> str:
    """A decimal near a stored one, at 0 to 3 decimals, so ranges often touch, nest or share an end."""
    base = Decimal(draw(st.sampled_from(near_values) | st.integers(-5, 120).map(str)))
    decimals = draw(st.integers(0, 3))
    step = Decimal(1).scaleb(-decimals)
    number = base.quantize(step) + step * draw(st.integers(-2, 2))
    return f"{abs(number) if number == 0 else number:.{decimals}f}"


UNIT_QUERIES = ("", f"|{UCUM}|mg", "||mg", f"|{UCUM}|g", "||milligram", "|http://snomed.info/sct|mg", "||g")


def unit_matches(query: str, unit: dict[str, str]) -> bool:
    """search.html#quantity: ``|system|code`` both match; ``||code`` matches the code or the unit text."""
    if not query:
        return True
    _, system, code = query.split("|")
    if system:
        return unit.get("system") == system and unit.get("code") == code
    return code in (unit.get("code"), unit.get("unit"))


def quantity_expected(pool: dict[str, StoredQuantity], values: list[str]) -> Ids:
    """Ids whose quantity meets any one of the alternatives (``[prefix]number[|system|code]``)."""
    found = set()
    for value in values:
        number, _, unit = value.partition("|")
        prefix, text = split_prefix(number)
        searched, unit_query = decimal_span(text), unit and "|" + unit
        found |= {rid for rid, q in pool.items()
                  if unit_matches(unit_query, q.unit) and number_matches(prefix, q.value, text, searched)}
    return found


def number_matches(prefix: str, stored: str, text: str, searched: tuple[Decimal, Decimal]) -> bool:
    """search.html#number: ``gt100`` is "greater than exactly 100" (and lt, ge, le alike); the others compare
    the ranges of implied precision."""
    exact = {"gt": Decimal.__gt__, "lt": Decimal.__lt__, "ge": Decimal.__ge__, "le": Decimal.__le__}.get(prefix)
    if exact is not None:
        return bool(exact(Decimal(stored), Decimal(text)))
    return prefix_matches(prefix, decimal_span(stored), searched)


def quantity_values(near_values: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.builds(lambda p, n, u: p + n + u, st.sampled_from(PREFIXES), search_numbers(near_values),
                     st.sampled_from(UNIT_QUERIES))


@settings(max_examples=250, deadline=None)
@given(values=st.lists(quantity_values(CANONICAL_VALUES), min_size=1, max_size=2))
def test_quantities(module_client: TestClient, quantity_pool: dict[str, StoredQuantity], values: list[str]) -> None:
    """Prefixes on decimals (eq, ne, sa, eb on both sides' implied precision; gt, lt, ge, le exactly), with and
    without units, OR'd."""
    got = search(module_client, "Observation", "quantities", [("value-quantity", ",".join(values))])
    expected = quantity_expected(quantity_pool, values)
    assert got == expected, f"value-quantity={','.join(values)}: {differences(got, expected, quantity_pool)}"


@settings(max_examples=100, deadline=None)
@given(value=quantity_values(AS_WRITTEN_VALUES))
def test_quantity_precision_is_the_stored_text(module_client: TestClient,
                                               precise_quantity_pool: dict[str, StoredQuantity], value: str) -> None:
    """A stored ``5.40`` is 5.395 to 5.405, not 5.35 to 5.45: FHIR decimals keep the precision they are written
    with (datatypes.html#decimal), and search ranges follow it."""
    got = search(module_client, "Observation", "quantities-as-written", [("value-quantity", value)])
    expected = quantity_expected(precise_quantity_pool, [value])
    assert got == expected, f"value-quantity={value}: {differences(got, expected, precise_quantity_pool)}"
