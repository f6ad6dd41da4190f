"""Properties of the pure helpers behind Bundles and PATCH: references, entry URLs, JSON Patch documents.

Each property is checked against a small reference implementation written here, over generated input.
"""

from __future__ import annotations

import copy
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fhir_hub.bundles.envelope import Target, parse_url
from fhir_hub.bundles.references import references_in, rewrite
from fhir_hub.errors import BadRequest, HubError, UnprocessableResource
from fhir_hub.fhir.patch import json_patch

BASE = "http://testserver/fhir"
FEW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------ strategies
LOCAL_NAMES = [f"urn:uuid:0000000{i}-0000-4000-8000-000000000000" for i in range(4)] + [
    "urn:oid:1.2.3", "Patient/p1", "Organization?identifier=urn:x|1"]
scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)

mappings = st.dictionaries(st.sampled_from(LOCAL_NAMES) | st.text(max_size=10),
                           st.sampled_from(["Patient/new-1", "Organization/o-2", ""]) | st.text(max_size=10),
                           max_size=5)
reference_strings = st.sampled_from(LOCAL_NAMES) | st.text(max_size=10)
# narrative text pieces: plain words, or an href/src link; joined with spaces
link_pieces = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + " <>/.:-", max_size=8).map(lambda t: ("text", t)),
    st.tuples(st.sampled_from(["href", "src"]), reference_strings.filter(lambda s: '"' not in s)),
)
divs = st.lists(link_pieces, max_size=4)

KEYS = st.sampled_from(["reference", "div", "display", "id", "extension", "contained", "subject"]) | st.text(max_size=4)


def _div_text(pieces: list[tuple[str, str]], mapping: dict[str, str] | None = None) -> str:
    """The narrative a list of pieces stands for, with links looked up in ``mapping`` when one is given."""
    out = []
    for kind, value in pieces:
        if kind == "text":
            out.append(value)
        else:
            out.append(f'{kind}="{mapping.get(value, value) if mapping is not None else value}"')
    return " ".join(out)


def _documents(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(
            KEYS, children | reference_strings | divs.map(_div_text), max_size=5),
        max_leaves=25,
    )


documents = _documents(scalars | reference_strings)


# -------------------------------------------------------------------------------- reference models
def expected_references(node: Any) -> set[str]:
    if isinstance(node, dict):
        found: set[str] = set()
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.add(value)
            else:
                found |= expected_references(value)
        return found
    if isinstance(node, list):
        return set().union(*(expected_references(v) for v in node)) if node else set()
    return set()


def expected_rewrite(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                out[key] = mapping.get(value, value)
            elif key == "div" and isinstance(value, str):
                out[key] = _expected_div(value, mapping)
            else:
                out[key] = expected_rewrite(value, mapping)
        return out
    if isinstance(node, list):
        return [expected_rewrite(v, mapping) for v in node]
    return node


def _expected_div(text: str, mapping: dict[str, str]) -> str:
    """Links in narrative: each whole ``href="..."``/``src="..."`` attribute found in ``mapping``."""
    out, i = [], 0
    while i < len(text):
        for attr in ("href", "src"):
            start = f'{attr}="'
            word_start = i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
            end = text.find('"', i + len(start))
            if word_start and text.startswith(start, i) and end != -1:
                value = text[i + len(start):end]
                out.append(f'{attr}="{mapping.get(value, value)}"')
                i = end + 1
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# ------------------------------------------------------------------------------------ references_in
@FEW
@given(documents)
def test_references_in_finds_every_reference_string(document: Any) -> None:
    before = copy.deepcopy(document)
    assert references_in(document) == expected_references(document)
    assert document == before


def test_references_in_examples() -> None:
    resource = {"resourceType": "Observation", "subject": {"reference": "urn:uuid:a"},
                "performer": [{"reference": "Practitioner/1"}, {"display": "no reference"}],
                "contained": [{"resourceType": "Device", "owner": {"reference": "#org"}}],
                "extension": [{"url": "x", "valueReference": {"reference": "Organization?identifier=s|v"}}],
                "note": [{"text": "reference"}], "reference": 7, "text": {"div": '<a href="urn:uuid:b">x</a>'}}
    assert references_in(resource) == {"urn:uuid:a", "Practitioner/1", "#org", "Organization?identifier=s|v"}


# --------------------------------------------------------------------------------------------- rewrite
@FEW
@given(documents, mappings)
def test_rewrite_replaces_exactly_the_mapped_references(document: Any, mapping: dict[str, str]) -> None:
    before = copy.deepcopy(document)
    result = rewrite(document, mapping)
    assert result == expected_rewrite(document, mapping)
    assert document == before  # the input is not mutated
    assert references_in(result) == {mapping.get(r, r) for r in references_in(document)}


@FEW
@given(divs, mappings)
def test_rewrite_maps_narrative_links(pieces: list[tuple[str, str]], mapping: dict[str, str]) -> None:
    resource = {"text": {"status": "generated", "div": _div_text(pieces)}, "reference": "urn:uuid:x"}
    result = rewrite(resource, mapping)
    assert result["text"]["div"] == _div_text(pieces, mapping)
    assert result["text"]["status"] == "generated"
    assert result["reference"] == mapping.get("urn:uuid:x", "urn:uuid:x")


@SOME
@given(_documents(st.sampled_from(LOCAL_NAMES)), mappings.filter(bool))
def test_rewrite_result_shares_nothing_mutable_with_the_input(document: Any, mapping: dict[str, str]) -> None:
    result = rewrite(document, mapping)
    inner = {id(x) for x in _containers(document)}
    assert not any(id(x) in inner for x in _containers(result))


def _containers(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [node, *(c for v in node.values() for c in _containers(v))]
    if isinstance(node, list):
        return [node, *(c for v in node for c in _containers(v))]
    return []


def test_rewrite_examples() -> None:
    mapping = {"urn:uuid:a": "Patient/1", "urn:uuid:b": "Organization/2"}
    resource = {"resourceType": "Encounter", "id": "urn:uuid:a", "subject": {"reference": "urn:uuid:a"},
                "participant": [{"individual": {"reference": "urn:uuid:c", "display": "urn:uuid:a"}}],
                "serviceProvider": {"reference": "urn:uuid:b"},
                "text": {"div": '<div><a href="urn:uuid:b">org</a> <img src="urn:uuid:a"/> urn:uuid:a</div>'}}
    assert rewrite(resource, mapping) == {
        "resourceType": "Encounter", "id": "urn:uuid:a", "subject": {"reference": "Patient/1"},
        "participant": [{"individual": {"reference": "urn:uuid:c", "display": "urn:uuid:a"}}],
        "serviceProvider": {"reference": "Organization/2"},
        "text": {"div": '<div><a href="Organization/2">org</a> <img src="Patient/1"/> urn:uuid:a</div>'}}


# ------------------------------------------------------------------------------------------- parse_url
TYPES = ["Patient", "Observation", "Organization", "Encounter", "Practitioner"]
ids = st.from_regex(re.compile(r"[A-Za-z0-9\-.]{1,64}", re.ASCII), fullmatch=True)
url_text = st.text(max_size=40) | st.builds(lambda t, rest: f"{t}{rest}", st.sampled_from(TYPES), st.text(max_size=30))


def _only_hub_errors(url: str) -> Target | None:
    try:
        return parse_url(url, BASE, where="Bundle.entry[0].request.url")
    except HubError as problem:
        assert problem.status in (400, 404), problem
        assert "Bundle.entry[0].request.url" in problem.diagnostics
        return None


def _netloc_free(url: str) -> bool:
    """No ``scheme://`` inside the part after the base (the known urlsplit crash, pinned below)."""
    relative = url[len(BASE) + 1:] if url.startswith(BASE + "/") else url
    return "://" not in relative.split("?", 1)[0]


@FEW
@given(url_text | url_text.map(lambda t: f"{BASE}/{t}"))
def test_parse_url_raises_only_hub_errors(url: str) -> None:
    if _netloc_free(url):
        _only_hub_errors(url)


@SOME
@given(st.text(max_size=20).map(lambda t: f"{BASE}/x://{t}"))
@example(f"{BASE}/x://[abc")
def test_parse_url_raises_only_hub_errors_after_the_base(url: str) -> None:
    _only_hub_errors(url)


@FEW
@given(st.sampled_from(TYPES), ids, st.booleans())
def test_parse_url_of_type_and_id(rtype: str, rid: str, absolute: bool) -> None:
    url = f"{BASE}/{rtype}/{rid}" if absolute else f"{rtype}/{rid}"
    target = parse_url(url, BASE, where="w")
    assert target == Target(rtype, rid)
    assert target.key == f"{rtype}/{rid}"


@FEW
@given(st.sampled_from(TYPES), ids, st.integers(1, 10**9), st.booleans())
def test_parse_url_of_a_version(rtype: str, rid: str, vid: int, absolute: bool) -> None:
    url = f"{rtype}/{rid}/_history/{vid}"
    assert parse_url(f"{BASE}/{url}" if absolute else url, BASE, where="w") == Target(rtype, rid, vid=str(vid))


@FEW
@given(st.sampled_from(TYPES), st.text(alphabet=string.ascii_letters + string.digits + "=&|:._-", max_size=30))
def test_parse_url_of_type_and_criteria(rtype: str, criteria: str) -> None:
    assert parse_url(f"{rtype}?{criteria}", BASE, where="w") == Target(rtype, query=criteria)
    assert parse_url(f"{BASE}/{rtype}?{criteria}", BASE, where="w") == Target(rtype, query=criteria)
    assert parse_url(rtype, BASE, where="w") == Target(rtype)


@FEW
@given(st.sampled_from(TYPES), st.text(min_size=1, max_size=70).filter(lambda s: not re.fullmatch(
    r"[A-Za-z0-9\-.]{1,64}", s) and not set(s) & set("/?#$\t\r\n")))  # tab/CR/LF: pinned below
def test_parse_url_refuses_invalid_ids(rtype: str, rid: str) -> None:
    with pytest.raises(BadRequest, match="not a valid FHIR id"):
        parse_url(f"{rtype}/{rid}", BASE, where="w")


@pytest.mark.parametrize("rid", ["a\tb", "a\nb", "ab\r"])
def test_parse_url_refuses_ids_with_tab_or_newline(rid: str) -> None:
    with pytest.raises(BadRequest, match="tabs or line breaks"):
        parse_url(f"Patient/{rid}", BASE, where="w")


@SOME
@given(st.characters(categories=["Nd", "No"]).filter(lambda c: c.isdigit() and not c.isascii()))
@example("²")
def test_parse_url_versions_are_ascii_digits(digit: str) -> None:
    try:
        target = parse_url(f"Patient/p1/_history/{digit}", BASE, where="w")
    except HubError:
        return
    assert target.vid is not None and target.vid.isascii() and int(target.vid) >= 0


# ------------------------------------------------------------------------------------------- json_patch
OPS = ["add", "remove", "replace", "move", "copy", "test"]
pointers = st.lists(st.text(alphabet="abx01-~/", max_size=3), max_size=3).map(
    lambda parts: "".join("/" + p for p in parts))
hashable = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(OPS)
operations = st.fixed_dictionaries(
    {"op": st.sampled_from(OPS) | hashable},
    optional={"path": pointers | json_values, "from": pointers | json_values, "value": json_values},
)
patch_documents = json_values | st.lists(operations | json_values, max_size=4)


def _bad_escape(value: Any) -> bool:
    return isinstance(value, str) and re.search(r"~(?![01])", value) is not None


def _clear_of_known_bugs(document: Any) -> bool:
    """Leaves out the two crashes pinned below: an unhashable ``op`` and a pointer with a bad ``~`` escape."""
    if not isinstance(document, list):
        return True
    return not any(isinstance(op, dict) and (isinstance(op.get("op"), list | dict) or _bad_escape(op.get("path")))
                   for op in document)


@FEW
@given(patch_documents.filter(_clear_of_known_bugs))
def test_json_patch_raises_only_bad_request_or_returns_a_function(document: Any) -> None:
    before = copy.deepcopy(document)
    try:
        apply = json_patch(document)
    except BadRequest as problem:
        assert problem.status == 400
        assert problem.diagnostics.startswith("JSON Patch: ")
    else:
        assert callable(apply)
    assert document == before


@SOME
@given(st.lists(st.one_of(
    st.fixed_dictionaries({"op": st.lists(hashable, max_size=2) | st.dictionaries(st.text(max_size=2), hashable),
                           "path": pointers, "value": json_values}),
    st.fixed_dictionaries({"op": st.sampled_from(OPS), "value": json_values, "from": pointers,
                           "path": st.builds("/{}~{}{}".format, st.text(max_size=3), st.sampled_from("2a/~"),
                                             st.text(max_size=3))}),
), min_size=1, max_size=3))
@example([{"op": ["add"], "path": "/x", "value": 1}])
@example([{"op": "add", "path": "/a~2", "value": 1}])
def test_json_patch_raises_only_bad_request_for_odd_operations(document: list[Any]) -> None:
    try:
        json_patch(document)
    except BadRequest:
        pass


@FEW
@given(st.lists(operations, min_size=1, max_size=4).filter(_clear_of_known_bugs),
       st.dictionaries(st.text(alphabet="abx01-", max_size=3), json_values, max_size=4))
def test_applying_a_well_formed_patch_fails_only_as_422(document: list[Any], resource: dict[str, Any]) -> None:
    try:
        apply = json_patch(document)
    except BadRequest:
        return
    before = copy.deepcopy(resource)
    try:
        patched = apply(resource)
    except UnprocessableResource as problem:
        assert problem.status == 422
    else:
        assert isinstance(patched, dict)
    assert resource == before


@FEW
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5), st.text(max_size=20))
def test_add_of_a_string_sets_it_and_leaves_the_input_alone(resource: dict[str, Any], value: str) -> None:
    before = copy.deepcopy(resource)
    patched = json_patch([{"op": "add", "path": "/x", "value": value}])(resource)
    assert patched == {**before, "x": value}
    assert resource == before


@FEW
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5), st.text(max_size=20), json_values)
def test_failed_test_op_is_422_and_changes_nothing(resource: dict[str, Any], value: str, expected: Any) -> None:
    resource = {**resource, "x": value}
    before = copy.deepcopy(resource)
    apply = json_patch([{"op": "test", "path": "/x", "value": expected}, {"op": "remove", "path": "/x"}])
    if expected == value:
        assert "x" not in apply(resource)
    else:
        with pytest.raises(UnprocessableResource, match="a test operation failed"):
            apply(resource)
    assert resource == before


@pytest.mark.parametrize(("document", "fragment"), [
    ({"op": "add"}, "non-empty JSON array"),
    ([], "non-empty JSON array"),
    ([{"op": "add", "path": "/a", "value": 1}, 3], "operation 1 is not a JSON object"),
    ([{"op": "frobnicate", "path": "/a"}], "operation 0 has op 'frobnicate'"),
    ([{"op": "remove"}], "operation 0 (remove) needs a JSON Pointer in 'path'"),
    ([{"op": "move", "path": "/a"}], "operation 0 (move) needs a JSON Pointer in 'from'"),
    ([{"op": "copy", "path": "/a", "from": "a"}], "operation 0 (copy) needs a JSON Pointer in 'from'"),
    ([{"op": "remove", "path": "/a"}, {"op": "test", "path": "/a"}], "operation 1 (test) needs a 'value'"),
])
def test_json_patch_names_the_bad_operation(document: Any, fragment: str) -> None:
    with pytest.raises(BadRequest) as caught:
        json_patch(document)
    assert fragment in caught.value.diagnostics
