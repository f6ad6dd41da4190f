"""The store interface: the database and a transaction's view of it are both a ``ReadStore``, and the
readers work over either (mypy checks the same where ``api/context.py`` hands one or the other over)."""

from __future__ import annotations

import inspect

import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.hub import Hub
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.own_writes import DependsOnOwnWrites, OwnWritesView
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.reader import ScopedReader
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.writer import Create

pytestmark = pytest.mark.anyio
HUB = Caller.hub("test")
SYSTEM = Caller(subject="system", scopes=Scopes.parse("system/*.cruds"))
METHODS = sorted(name for name, member in vars(ReadStore).items() if inspect.iscoroutinefunction(member))


@pytest.mark.parametrize("implementation", [MongoStore, OwnWritesView], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", METHODS)
def test_each_store_has_each_read_as_the_interface_states_it(implementation: type, name: str) -> None:
    """Its own method (nothing answered by a fallback ``__getattr__``), with the same parameters."""
    wanted, found = getattr(ReadStore, name), implementation.__dict__.get(name)
    assert found is not None, f"{implementation.__name__} has no {name}"
    assert inspect.iscoroutinefunction(found)
    parameters = [(p.name, p.kind, p.default) for p in inspect.signature(wanted).parameters.values()]
    assert [(p.name, p.kind, p.default) for p in inspect.signature(found).parameters.values()] == parameters


def _identified(value: str) -> dict[str, object]:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": value}]}


async def _found(reader: ScopedReader, value: str) -> list[str]:
    versions: list[StoredVersion] = await reader.conditional("Patient", f"identifier=urn:test|{value}", what="test")
    return [v.rid for v in versions]


async def test_the_readers_take_the_store_or_a_transactions_view_of_it(hub: Hub) -> None:
    stored = await hub.writer.commit(Create("Patient", _identified("1")), caller=HUB)
    async with hub.store.transaction() as tx:
        written = await hub.writer.commit(Create("Patient", _identified("2")), caller=HUB, tx=tx)
        view = OwnWritesView(hub.store, tx)
        assert isinstance(hub.store, ReadStore) and isinstance(view, ReadStore)
        on_store, on_view = ScopedReader(hub.store, SYSTEM), ScopedReader(view, SYSTEM)

        assert await _found(on_store, "1") == await _found(on_view, "1") == [stored.version.rid]
        assert await _found(on_view, "2") == [written.version.rid]  # the transaction's own, uncommitted write
        if hub.store.capabilities.transactions:  # (without them, the group is written as it goes)
            assert await _found(on_store, "2") == []
        assert view.audit_log is hub.store.audit_log  # never written inside a transaction

        assert (await on_store.read("Patient", stored.version.rid)).vid == 1
        with pytest.raises(DependsOnOwnWrites, match="current"):  # a read the view does not merge
            await on_view.read("Patient", stored.version.rid)
    assert await _found(on_store, "2") == [written.version.rid]
