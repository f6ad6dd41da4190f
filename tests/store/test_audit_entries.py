"""An audit entry survives its stored form: the queried fields stay fields, the rest is packed."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.store.audit_log import packed, unpacked

_json = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4),
                     max_leaves=12)
_entries = st.fixed_dictionaries(
    {"_id": st.text(min_size=1, max_size=36), "ts": st.integers(0, 2**62)},
    optional={"p": st.text(max_size=36), "e": st.just(1), "ef": st.text(max_size=5), "i": st.text(max_size=12),
              "o": st.integers(100, 599), "who": st.dictionaries(st.text(max_size=8), st.text(max_size=20)),
              "req": _json, "r": st.lists(st.text(max_size=40), max_size=5), "more": st.integers(1, 10**6),
              "ps": st.lists(st.text(max_size=36), max_size=5)})


@given(_entries)
def test_an_entry_reads_back_as_written(entry: dict[str, Any]) -> None:
    stored = packed(entry)
    assert set(stored) <= {"_id", "ts", "p", "e", "ef", "d"}
    assert {k: stored[k] for k in ("_id", "ts", "p", "e", "ef") if k in entry} == \
        {k: entry[k] for k in ("_id", "ts", "p", "e", "ef") if k in entry}
    assert unpacked(dict(stored)) == entry


@given(_entries)
def test_an_entry_stored_before_packing_reads_as_it_is(entry: dict[str, Any]) -> None:
    assert unpacked(dict(entry)) == entry
