"""The match step's regrouping (``linking/regroup.py``): records re-pointed when a write brings two personal
IDs within reach, without losing what a facility wrote meanwhile, and what ``$links`` shows of it."""

from __future__ import annotations

import pytest

from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub
from fhir_hub.linking.elements import Decision, master_of
from fhir_hub.store.writer import Update
from tests.linking.test_linker import facility
from tests.linking.test_order_independence import _BRIDGED

pytestmark = pytest.mark.anyio


async def _write(hub: Hub, *indexes: int) -> None:
    for i in indexes:
        rid, body, code = _BRIDGED[i]
        await hub.writer.commit(Update("Patient", rid, body | {"id": rid}), caller=facility(code))


async def test_the_second_holder_takes_the_record_out_of_the_first_s_person(hub: Hub) -> None:
    """r2 (no CCCD) joined r0's person; r1 (another CCCD, linking with r2 as well) arrives: r2 is re-pointed
    to a master of its own, r0's master is rebuilt without it, and the move is in r2's history and log."""
    await _write(hub, 0, 2)
    first = await hub.store.master_in_use("Patient/r0")
    assert await hub.store.master_in_use("Patient/r2") == first
    await _write(hub, 1)
    own = await hub.store.master_in_use("Patient/r2")
    assert own not in (first, await hub.store.master_in_use("Patient/r1"))
    person = await hub.store.person("Patient/r0")
    assert person is not None and person.sources == {"Patient/r0"}
    golden = await hub.store.current("Patient", first.removeprefix("Patient/"))  # type: ignore[union-attr]
    assert golden is not None and golden.json is not None
    assert {link["other"]["reference"] for link in loads(golden.json)["link"]} == {"Patient/r0"}
    history = (await hub.store.history(rtype="Patient", rid="r2", limit=10)).versions
    assert len(history) == 2  # the facility's write, then the hub's re-pointing (content unchanged)
    log = await hub.store.link_decisions.about({"Patient/r2"})
    assert [(e["action"], e["a"], e["b"], e["rule"]) for e in log] == [("relink", "Patient/r2", first, "ambiguous")]


async def test_a_move_never_overwrites_what_a_facility_wrote_meanwhile(hub: Hub) -> None:
    await _write(hub, 0, 2)
    read = await hub.store.current("Patient", "r2")
    assert read is not None and read.json is not None
    rid, body, code = _BRIDGED[2]
    newer = body | {"id": rid, "telecom": [{"system": "phone", "value": "0909999888"}]}
    await hub.writer.commit(Update("Patient", rid, newer), caller=facility(code))
    assert hub.writer.linker is not None
    apart = Decision("ambiguous", reviews=("Patient/r0",))
    await hub.writer.linker._move(read, apart, "Patient/master-elsewhere", None)
    stored = await hub.store.current("Patient", "r2")
    assert stored is not None and stored.json is not None
    content = loads(stored.json)
    assert content["telecom"] == newer["telecom"]
    linked = master_of(content)
    assert linked is not None and linked[0] == "Patient/master-elsewhere" and linked[1].rule == "ambiguous"
