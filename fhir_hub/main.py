"""The web application: routers in the order their paths must be matched, one error handler, one lifespan.

Route order matters because ``/{rtype}/{rid}`` would otherwise swallow ``/{rtype}/_history`` and
``/{rtype}`` would swallow ``/metadata``: literal paths are mounted before the patterns that could match
them. Within that rule the most frequent interaction, read, comes early, as routes are tried in order.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fhir_hub import __version__
from fhir_hub.api import (
    access_check,
    access_log,
    bundle,
    conformance,
    create,
    delete,
    everything,
    history,
    ingest,
    linking,
    match,
    metadata,
    patch,
    portal,
    read,
    risk,
    search,
    smart,
    summary,
    update,
    validate,
)
from fhir_hub.api.budget import RequestBudget
from fhir_hub.api.conventions import HttpConventions
from fhir_hub.api.direct_read import DirectRead
from fhir_hub.api.errors import install_error_handlers
from fhir_hub.api.middleware import AuditMiddleware
from fhir_hub.config import Settings
from fhir_hub.fhir.ids import IdFactory, new_uuid_id
from fhir_hub.fhir.instant import Clock, system_clock
from fhir_hub.hub import Hub, running_hub
from fhir_hub.queue.processes import WorkerProcesses

StartupHook = Callable[[Hub], Awaitable[None]]

# linking's, match's, access_log's, summary's and validate's /Type/$... routes before read's /{rtype}/{rid}, which
# would take them for ids; everything's and summary's before search's /{ctype}/{cid}/{rtype} (a compartment search);
# conformance's /StructureDefinition routes before read's and search's (the hub's profiles, from files); portal's
# /portal (the resident page, not FHIR) before search's /{rtype}
ROUTERS = (metadata.router, smart.router, portal.router, ingest.router, linking.router, match.router,
           access_log.router, access_check.router, risk.router, summary.router, everything.router, validate.router,
           history.router,
           conformance.router, read.router, search.router, bundle.router, create.router, update.router,
           patch.router, delete.router)


def freeze_startup_heap() -> None:
    """Take what start-up allocated out of the garbage collector's sight; call once the server is ready.

    The search-parameter tables, compiled FHIRPath and R4B models are ~350,000 long-lived objects that
    every full collection would walk again: measured 0.23 s per collection, so that one request in a few
    hundred (a large Bundle: several times) stalled for a quarter of a second. Not done by ``create_app``
    itself: the test suite builds hundreds of apps in one process and would keep each one's objects.
    """
    gc.collect()
    gc.freeze()


async def prepare_to_serve(hub: Hub) -> None:
    """What a long-running server does once started (``fhir-hub serve``, and the benchmarks as it does):
    start the validation workers (they get ready in the background) and take start-up's objects out of
    the collector's sight. Not done by ``create_app``, for the same reason as ``freeze_startup_heap``."""
    await hub.writer.validation.start()
    freeze_startup_heap()


async def ready_to_measure(hub: Hub) -> None:
    """A benchmark's start-up hook: as ``fhir-hub serve``, and the validation workers ready before it measures."""
    await prepare_to_serve(hub)
    await hub.writer.validation.started()


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    new_id: IdFactory = new_uuid_id,
    on_startup: StartupHook | None = None,
    with_workers: bool = False,
) -> FastAPI:
    """``with_workers``: start the priority queue's worker processes beside the hub (``fhir-hub serve``);
    tests and benchmarks start their own."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_hub(settings, clock=clock, new_id=new_id) as hub, WorkerProcesses(
                settings, hub.mongodb_uri, settings.queue_workers if with_workers else 0) as workers:
            app.state.hub = hub
            if on_startup is not None:
                await on_startup(hub)
            await workers.start()
            yield

    app = FastAPI(
        title="FHIR interoperability hub",
        version=__version__,
        summary="FHIR R4 REST API of the Ho Chi Minh City health-record hub",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(DirectRead, endpoint=read.read)  # innermost: a read by id, past the router
    app.add_middleware(RequestBudget, budget_ms=settings.request_budget_ms)  # inside the audit: it sees the 503
    app.add_middleware(HttpConventions, settings=settings)  # outside the budget: a HEAD is a GET there
    app.add_middleware(AuditMiddleware)
    for router in ROUTERS:
        # The routers have no prefix, tags or dependencies, so their routes are mounted as they are:
        # FastAPI 0.165's include_router wraps each router in a matcher of its own, measured at 11% more
        # Python calls per read (1,622 against 1,440) for nothing this app uses.
        app.router.routes.extend(router.routes)
    return app
