"""The running hub's long-lived parts, opened together and closed together.

``running_hub`` is the single place that decides where data lives (the MongoDB named by
``FHIR_HUB_MONGODB_URI``, or an embedded nx-27017 started for the occasion) and which keys tokens are
checked against (the configured JWKS, or in development a key generated in the data directory). The web
app, the CLI and the tests all go through it, so they cannot drift apart in how they connect, create
indexes, repair or authenticate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymongo import AsyncMongoClient

from consent.decision import AccessDecision
from consent.gate import ConsentGate, PersonConsents
from consent.policy import Policy, default_policy
from fhir_hub.audit import AuditTrail
from fhir_hub.auth.authenticator import Authenticator
from fhir_hub.auth.backend import ClientRegistry, RegistrationError, TokenEndpoint, clients_from_file
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.keys import KeySet, issuing_key
from fhir_hub.auth.policy import access_decision, requester
from fhir_hub.auth.tokens import TokenVerifier
from fhir_hub.config import ConfigError, Settings
from fhir_hub.fhir.ids import IdFactory, new_uuid_id
from fhir_hub.fhir.instant import Clock, system_clock, use_time_zone
from fhir_hub.fhir.validation_ahead import ValidationAhead
from fhir_hub.ingest.mapper import MappingWorkers
from fhir_hub.queue.jobs import JobQueue
from fhir_hub.search.indexing import index_format
from fhir_hub.store.consent_cache import ConsentCache
from fhir_hub.store.consent_subjects import people_consents
from fhir_hub.store.derivers import DERIVERS, Deriver
from fhir_hub.store.embedded import EmbeddedStore
from fhir_hub.store.mongo import MongoStore, detect_capabilities
from fhir_hub.store.schema import ensure_schema
from fhir_hub.store.store_lock import StoreLock
from fhir_hub.store.writer import Writer

log = logging.getLogger(__name__)


@dataclass
class Hub:
    settings: Settings
    store: MongoStore
    writer: Writer
    authenticator: Authenticator
    audit: AuditTrail
    mongodb_uri: str
    ingest_workers: MappingWorkers  # where $ingest payloads are parsed and mapped, off the event loop
    queue: JobQueue  # the priority queue's jobs (``fhir_hub/queue``)
    token_endpoint: TokenEndpoint  # SMART Backend Services: hospital systems' tokens (``auth/backend.py``)
    # made once per request from its caller; replaced only by tests (the read-path contract suite)
    access: Callable[[Caller], AccessDecision] = access_decision


def consent_access(store: MongoStore, clock: Clock, policy: Policy | None = None
                   ) -> Callable[[Caller], AccessDecision]:
    """Each request's decision with its consent gate: the policy, the caller as the engine sees it at this
    moment, and a look-up of the consents of the people its resources belong to (for that request, from
    the hub's look-ups kept under the store's current consent epoch, ``store/consent_cache.py``)."""
    chosen = policy or default_policy()

    def fetch(patients: frozenset[str]) -> Awaitable[Mapping[str, PersonConsents]]:
        return people_consents(store, patients)

    cache = ConsentCache(fetch, store.consent_epoch)

    def access(caller: Caller) -> AccessDecision:
        return access_decision(caller, ConsentGate(requester(caller, clock()), chosen, cache.lookup()))

    return access


def token_keys(settings: Settings) -> KeySet:
    """The keys the configuration names, and the hub's own signing key (``FHIR_HUB_TOKEN_SIGNING_KEY``, or in
    development its generated key) bound to the issuer of the tokens it signs."""
    own = issuing_key(settings)
    if settings.jwks_file is not None:
        keys = KeySet.from_file(settings.jwks_file)
    elif settings.jwks_url is not None:
        keys = KeySet.from_url(settings.jwks_url)
    else:
        keys = KeySet({})
        if settings.token_signing_key is None:
            log.warning("development mode: tokens are checked against the key in %s (mint them with "
                        "`fhir-hub token`)", settings.data_dir)
    return keys if own is None else keys.with_key(own.verification_key())


def token_endpoint(settings: Settings, store: MongoStore) -> TokenEndpoint:
    """The hub's own token endpoint: clients of ``FHIR_HUB_BACKEND_CLIENTS`` and of the store, the jti record
    in the store (so a replay fails whichever process it reaches), the hub's signing key."""
    try:
        configured = clients_from_file(settings.backend_clients) if settings.backend_clients is not None else {}
    except RegistrationError as exc:
        raise ConfigError(str(exc)) from None
    return TokenEndpoint(clients=ClientRegistry(configured, store.backend_clients),
                         first_use=store.used_assertions.first_use, key=issuing_key(settings),
                         audience=settings.audience, lifetime_seconds=settings.issued_token_seconds,
                         leeway_seconds=settings.clock_skew_seconds)


def token_verifier(settings: Settings) -> TokenVerifier:
    """How the hub checks tokens; ``fhir-hub token``'s tests check their tokens against this very verifier."""
    return TokenVerifier(token_keys(settings), issuer=settings.issuer, audience=settings.audience,
                         leeway_seconds=settings.clock_skew_seconds, max_bytes=settings.max_token_bytes,
                         max_lifetime_seconds=settings.max_token_lifetime_seconds)


async def _upgrade_index(store: MongoStore, time_zone: str) -> None:
    """Entries written by an older version of the indexer, or in another zone, are recomputed before the hub
    serves a search."""
    wanted = index_format(time_zone)
    found = await store.index_format()
    if found == wanted:
        return
    was = "unrecorded" if found is None else str(found)

    def progress(done: int) -> None:
        if done % 5000 == 0:
            log.info("search index format %s -> %s: %d resources recomputed so far", was, wanted, done)

    visited = await store.reindex_all(progress)
    await store.set_index_format(wanted)
    if visited:
        log.warning("search index format %s -> %s: recomputed the entries of %d resources", was, wanted, visited)


@asynccontextmanager
async def running_hub(
    settings: Settings, *, clock: Clock = system_clock, new_id: IdFactory = new_uuid_id,
    derivers: tuple[Deriver, ...] = DERIVERS,
) -> AsyncIterator[Hub]:
    use_time_zone(settings.time_zone)  # before anything is indexed or searched (fhir/instant.py)
    authenticator = Authenticator(await asyncio.to_thread(token_verifier, settings))
    embedded: EmbeddedStore | None = None
    uri = settings.mongodb_uri
    if uri is None:
        embedded = EmbeddedStore(settings.data_dir)
        uri = await asyncio.to_thread(embedded.start)
    client: AsyncMongoClient | None = None
    audit: AuditTrail | None = None
    lock: StoreLock | None = None
    validation = ValidationAhead(settings.validation_processes)  # workers start with the first large Bundle
    ingest_workers = MappingWorkers(settings.ingest_processes)  # started with the first $ingest payload
    try:
        await asyncio.to_thread(ensure_schema, uri, settings.db_name)
        client = AsyncMongoClient(uri, appname="fhir-hub", serverSelectionTimeoutMS=10_000)
        capabilities = await detect_capabilities(client)
        if capabilities.engine == "nx-27017":
            lock = StoreLock.for_server(uri, settings.db_name, settings.store_lock_dir)
            if lock is None:
                log.warning("nx-27017 on another machine: its transactions are not isolated from the writes of "
                            "hub processes on other machines (use MongoDB, or run every hub process beside it)")
        store = MongoStore(client, settings.db_name, capabilities, derivers,
                           claim_stale_seconds=settings.claim_stale_seconds, lock=lock)
        repaired = await store.reconcile_pending()
        if repaired:
            log.warning("finished %d write(s) left incomplete by an earlier stop", repaired)
        await store.new_consent_epoch()  # whatever any process kept of consents is from before this start
        await _upgrade_index(store, settings.time_zone)
        tokens = await asyncio.to_thread(token_endpoint, settings, store)
        writer = Writer(store, clock=clock, new_id=new_id, source_prefix=settings.source_prefix, validation=validation,
                        link_patients=settings.link_patients, match_model=settings.match_model())
        audit = AuditTrail(store.audit_log, clock=clock, flush_ms=settings.audit_flush_ms)
        audit.start()
        log.info("store: %s (%s), database %r", capabilities.engine, _redact(uri), settings.db_name)
        yield Hub(settings=settings, store=store, writer=writer, authenticator=authenticator, audit=audit,
                  mongodb_uri=uri, ingest_workers=ingest_workers, token_endpoint=tokens,
                  queue=JobQueue(store.db, store.gate, lease_ms=settings.queue_lease_seconds * 1000,
                                 max_attempts=settings.queue_max_attempts, backoff_ms=settings.queue_backoff_ms),
                  access=consent_access(store, clock) if settings.enforce_consent else access_decision)
    finally:
        await validation.close()
        await ingest_workers.close()
        if audit is not None:
            await audit.stop()
        if client is not None:
            await client.close()
        if lock is not None:
            lock.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _redact(uri: str) -> str:
    """Hide a password in a connection string before it reaches a log."""
    if "@" not in uri:
        return uri
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
