"""``fhir-hub relink``: Patients stored while matching was off get their masters (their facility still
owns them), a missing master is rebuilt, and a second run changes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.cli import main
from fhir_hub.config import Settings
from fhir_hub.hub import running_hub
from fhir_hub.linking.relink import relink
from fhir_hub.store.writer import Update

pytestmark = pytest.mark.anyio
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def _patient(rid: str, family: str, given: list[str]) -> dict[str, object]:
    return {"resourceType": "Patient", "id": rid, "name": [{"family": family, "given": given}],
            "birthDate": "1970-07-07", "gender": "male", "identifier": [{"system": CCCD, "value": "079070001234"}]}


async def test_records_stored_without_matching_are_linked_and_masters_repaired(settings: Settings) -> None:
    off = dataclasses.replace(settings, link_patients=False)
    async with running_hub(off) as hub:
        for rid, code, family in (("a", "79001", "Đỗ"), ("b", "79002", "Do")):
            caller = Caller(subject="his", scopes=Scopes.parse("system/*.cruds"), facility=code)
            await hub.writer.commit(Update("Patient", rid, _patient(rid, family, ["Văn", "Hải"])), caller=caller)
    async with running_hub(settings) as hub:
        assert await hub.store.master_in_use("Patient/a") is None
        report = await relink(hub)
        assert (report.records, report.linked) == (2, 2)
        master = await hub.store.master_in_use("Patient/a")
        assert master is not None and master == await hub.store.master_in_use("Patient/b")
        record = await hub.store.current("Patient", "b")
        assert record is not None and record.source == "urn:fhir-hub:facility:79002"  # still the facility's
        # a master lost (a stop between a record and its master) is rebuilt; a second run links nothing
        await hub.store.current_docs.delete_one({"_id": master})
        again = await relink(hub)
        assert again.linked == 0 and again.records == 2
        rebuilt = await hub.store.current("Patient", master.removeprefix("Patient/"))
        assert rebuilt is not None and not rebuilt.deleted
        versions = {rid: (await hub.store.current("Patient", rid)).vid for rid in "ab"}  # type: ignore[union-attr]
        await relink(hub)
        assert {rid: (await hub.store.current("Patient", rid)).vid for rid in "ab"} == versions  # type: ignore[union-attr]


def test_the_command_reports_what_it_did(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FHIR_HUB_MONGODB_URI", settings.mongodb_uri or "")
    monkeypatch.setenv("FHIR_HUB_DB_NAME", settings.db_name)
    assert main(["relink", "--data-dir", str(settings.data_dir)]) == 0
    assert "relink: 0 Patient records, 0 linked now, 0 masters rebuilt" in capsys.readouterr().out
