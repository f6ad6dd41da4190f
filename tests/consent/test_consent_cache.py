"""Consent look-ups kept across requests (``store/consent_cache.py``) under the store's consent epoch
(``store/consent_epoch.py``): what moves the epoch on, what the cache serves under one epoch, and a consent
toggled by another hub process while this one reads, every read made after a write was acknowledged
obeying that write."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Mapping
from typing import Any

import pytest

from consent.gate import PersonConsents
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.config import Settings
from fhir_hub.errors import NotFound
from fhir_hub.hub import Hub, running_hub
from fhir_hub.services.session import Session
from fhir_hub.store.consent_cache import ConsentCache
from fhir_hub.store.consent_epoch import EPOCH_ID, OPEN_LIMIT_MS, read_epoch
from fhir_hub.store.writer import Update

pytestmark = pytest.mark.anyio

CLINICIAN = Caller(subject="dr", scopes=Scopes.parse("user/*.rs"), facility="79001", fhir_user="Practitioner/dr")
OTHER_FACILITY = Caller(subject="sys-79002", scopes=Scopes.parse("system/*.cruds"), facility="79002")
HUB = Caller.hub("test")


# ------------------------------------------------------------------------------ the cache on its own
class Fake:
    """An epoch and a look-up that count what they are asked."""

    def __init__(self) -> None:
        self.value: str | None = "e1"
        self.fetched: list[frozenset[str]] = []
        self.epochs_read = 0

    async def epoch(self) -> str | None:
        self.epochs_read += 1
        return self.value

    async def fetch(self, patients: frozenset[str]) -> Mapping[str, PersonConsents]:
        self.fetched.append(patients)
        return {p: PersonConsents(frozenset({p}), (), self.value) for p in patients}


async def test_a_lookup_is_kept_while_the_epoch_stays_and_fetched_again_once_it_moves() -> None:
    fake = Fake()
    cache = ConsentCache(fake.fetch, fake.epoch)
    first = await cache.lookup()(frozenset({"a", "b"}))
    assert fake.fetched == [{"a", "b"}] and first["a"].birth_date == "e1"
    second = cache.lookup()
    assert (await second(frozenset({"a"})))["a"].birth_date == "e1"
    assert (await second(frozenset({"b", "c"})))["c"].birth_date == "e1"
    assert fake.fetched == [{"a", "b"}, {"c"}]  # only what was never looked up
    assert fake.epochs_read == 3  # before every look-up
    fake.value = "e2"  # a write that changes look-ups, even one the same request made
    assert (await second(frozenset({"a"})))["a"].birth_date == "e2"
    assert fake.fetched[-1] == {"a"}


async def test_a_lookup_overtaken_by_a_write_is_not_kept_for_the_new_epoch() -> None:
    fake = Fake()
    fetch = fake.fetch

    async def overtaken(patients: frozenset[str]) -> Mapping[str, PersonConsents]:
        found = await fetch(patients)  # read under e1 ...
        fake.value = "e2"  # ... and a write lands before the look-up is kept
        return found

    fake.fetch = overtaken  # type: ignore[method-assign]
    cache = ConsentCache(fake.fetch, fake.epoch)
    await cache.lookup()(frozenset({"a"}))
    fake.fetch = fetch  # type: ignore[method-assign]
    cache.fetch = fetch
    assert (await cache.lookup()(frozenset({"a"})))["a"].birth_date == "e2"
    assert fake.fetched == [{"a"}, {"a"}]


async def test_nothing_is_kept_without_an_epoch_and_the_oldest_go_beyond_the_limit() -> None:
    fake = Fake()
    fake.value = None
    cache = ConsentCache(fake.fetch, fake.epoch, max_patients=2)
    await cache.lookup()(frozenset({"a"}))
    await cache.lookup()(frozenset({"a"}))
    assert len(fake.fetched) == 2
    fake.value = "e1"
    lookup = cache.lookup()
    for patient in ("a", "b", "c"):
        await lookup(frozenset({patient}))
    fake.fetched.clear()
    await cache.lookup()(frozenset({"a", "b", "c"}))
    assert fake.fetched == [{"a"}]  # "a" went first


# ------------------------------------------------------------------------------ the epoch in the store
def consent(status: str) -> dict[str, Any]:
    """Lan's permit for everyone, agreed by her (the hub's own writes are trusted)."""
    return {"resourceType": "Consent", "id": "lan-consent", "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/lan"},
            "verification": [{"verified": True, "verifiedWith": {"reference": "Patient/lan"}}],
            # R4 ppc-1: a Consent names a policy or a policyRule (the hub's rules come from the provisions)
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit"}}


async def lan_at_another_facility(hub: Hub) -> None:
    await hub.writer.commit(Update("Patient", "lan", {"resourceType": "Patient", "id": "lan",
                                                      "birthDate": "1956-04-12"}), caller=OTHER_FACILITY)
    await hub.writer.commit(Update("Observation", "bp", {
        "resourceType": "Observation", "id": "bp", "status": "final", "subject": {"reference": "Patient/lan"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}}), caller=OTHER_FACILITY)


async def test_writes_that_change_lookups_move_the_epoch_on_and_others_do_not(hub: Hub) -> None:
    epochs = [await hub.store.consent_epoch()]
    await lan_at_another_facility(hub)  # a Patient, then an Observation
    epochs.append(await hub.store.consent_epoch())
    await hub.writer.commit(Update("Observation", "bp2", {
        "resourceType": "Observation", "id": "bp2", "status": "final", "subject": {"reference": "Patient/lan"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}}), caller=OTHER_FACILITY)
    assert await hub.store.consent_epoch() == epochs[-1]
    await hub.writer.commit(Update("Consent", "lan-consent", consent("active")), caller=HUB)
    epochs.append(await hub.store.consent_epoch())
    await hub.writer.commit(Update("Consent", "lan-consent", consent("inactive")), caller=HUB)  # a replace
    epochs.append(await hub.store.consent_epoch())
    async with hub.store.transaction() as tx:
        await hub.writer.commit(Update("Organization", "org", {"resourceType": "Organization", "id": "org",
                                                                   "name": "Trạm y tế"}),
                                caller=HUB, tx=tx)
    epochs.append(await hub.store.consent_epoch())
    await hub.store.reconcile("Consent", "lan-consent")  # crash repair: the version may be what changed
    epochs.append(await hub.store.consent_epoch())
    assert None not in epochs  # a hub's start moves it on too
    assert len(set(epochs)) == len(epochs), epochs


async def test_a_group_stopped_between_its_commit_and_the_epoch_leaves_nothing_kept(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that stopped after committing a withdrawal but before moving the epoch on: its open
    marker keeps every process from answering from before, until the marker is old enough to be a
    stopped group's, when a reader moves the epoch on and caching resumes."""
    await lan_at_another_facility(hub)
    await hub.writer.commit(Update("Consent", "lan-consent", consent("active")), caller=HUB)
    assert await visible(hub)  # kept under this epoch
    before = await hub.store.consent_epoch()
    async with hub.store.transaction() as tx:  # a group that ends normally leaves no marker
        await hub.writer.commit(Update("Consent", "lan-consent", consent("active")), caller=HUB, tx=tx)
    assert [d["_id"] async for d in hub.store.epoch.find({})] == [EPOCH_ID]
    assert await visible(hub)

    async def stopped(tx: Any) -> None:
        return None

    monkeypatch.setattr(hub.store, "_close_group", stopped)
    async with hub.store.transaction() as tx:
        await hub.writer.commit(Update("Consent", "lan-consent", consent("inactive")), caller=HUB, tx=tx)
    assert not await visible(hub)  # the withdrawal is obeyed although the epoch did not move
    assert await hub.store.consent_epoch() is None
    later = int(time.time() * 1000) + OPEN_LIMIT_MS + 1
    assert await read_epoch(hub.store.epoch, now_ms=later) is None  # the repair
    assert [d["_id"] async for d in hub.store.epoch.find({})] == [EPOCH_ID]
    after = await hub.store.consent_epoch()
    assert after not in (None, before)
    assert not await visible(hub)


# ------------------------------------------------------------------------------ two processes
ROUNDS = 12


def _toggle(settings: Settings, found: Any) -> None:
    """Another hub process: Lan withdraws and gives her consent in turn; when each write began and was
    acknowledged, and whether it left her data open to facility 79001."""
    async def run() -> list[tuple[float, float, bool]]:
        log = []
        async with running_hub(settings) as hub:
            for n in range(ROUNDS):
                status = "inactive" if n % 2 == 0 else "active"
                began = time.time()
                await hub.writer.commit(Update("Consent", "lan-consent", consent(status)), caller=HUB)
                log.append((began, time.time(), status == "active"))
                await asyncio.sleep(0.08)  # reads land between writes, not only across them
        return log

    found.put(asyncio.run(run()))


async def visible(hub: Hub) -> bool:
    try:
        await Session.open(hub, CLINICIAN).reader.read("Observation", "bp")
    except NotFound:
        return False
    return True


async def test_a_consent_changed_by_another_process_is_obeyed_by_the_next_request(hub: Hub,
                                                                                  settings: Settings) -> None:
    await lan_at_another_facility(hub)
    await hub.writer.commit(Update("Consent", "lan-consent", consent("active")), caller=HUB)
    assert await visible(hub)  # the look-up is now kept in this process
    context = multiprocessing.get_context("spawn")
    found = context.Queue()
    other = context.Process(target=_toggle, args=(settings, found))
    other.start()
    reads: list[tuple[float, bool]] = []
    writes: list[tuple[float, float, bool]] | None = None
    deadline = time.monotonic() + 180
    while writes is None and time.monotonic() < deadline:
        began = time.time()
        reads.append((began, await visible(hub)))
        if not found.empty():
            writes = found.get()
    other.join(timeout=30)
    assert other.exitcode == 0 and writes is not None and len(writes) == ROUNDS
    checked = 0
    for n, (_began, acknowledged, open_) in enumerate(writes):
        following = writes[n + 1][0] if n + 1 < len(writes) else float("inf")
        between = [shown for at, shown in reads if acknowledged < at < following]
        assert all(shown == open_ for shown in between), (n, open_, between)
        checked += len(between)
    assert checked >= ROUNDS  # reads did land between the writes
    assert await visible(hub) is writes[-1][2]
