"""Reads stop when their client leaves or their time budget runs out.

A read that walks much of the store (a large history or search) used to go on after its client had gone,
each abandoned request still holding the store: three at once made everyone else's reads hundreds of
times slower. This pure ASGI middleware bounds every GET and HEAD request:

- a **time budget** (``FHIR_HUB_REQUEST_BUDGET_MS``): a request still running when it is spent is
  cancelled and answered 503 with an OperationOutcome saying so (code ``timeout``);
- **client disconnects**: a request still running after ``_WATCH_AFTER`` seconds starts listening for the
  client's ``http.disconnect`` and is cancelled when it comes. Most reads finish long before and never pay
  for the listening task; cancelling stops the hub from sending the store further queries.

Only reads: cancelling a write between its commit point and its derived steps would leave repair work
behind, and a write's cost is bounded by its body. The middleware sits inside the audit middleware, so the
audit records the 503, and 499 for a request its client abandoned.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_hub.api.errors import error_response
from fhir_hub.errors import Issue

_READS = frozenset({"GET", "HEAD"})
_WATCH_AFTER = 0.25  # seconds before a running read starts listening for its client leaving
CLIENT_CLOSED = 499  # the status audited for a request whose client left (nginx's "client closed request")


class RequestBudget:
    def __init__(self, app: ASGIApp, *, budget_ms: int) -> None:
        self.app = app
        self.budget = budget_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _READS:
            await self.app(scope, receive, send)
            return
        run = _Run(receive, send)
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        watch_later = loop.call_later(_WATCH_AFTER, run.watch, task)
        try:
            async with asyncio.timeout(self.budget):
                await self.app(scope, run.receive, run.send)
        except TimeoutError:
            if not run.started:
                await _over_budget(self.budget)(scope, run.receive, run.send)
        except asyncio.CancelledError:
            if not run.client_left or task.uncancel() > 0:
                raise  # cancelled from outside (shutdown): not ours to swallow
            scope.setdefault("state", {})["client_left"] = True
        finally:
            watch_later.cancel()
            run.stop()


class _Run:
    """One request's side of the exchange: what was sent, and the listener for the client leaving."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.started = False
        self.finished = False
        self.client_left = False
        self._listener: asyncio.Task[None] | None = None
        self._messages: asyncio.Queue[Message] = asyncio.Queue()

    async def receive(self) -> Message:
        """The app's receive: straight through until the listener owns the connection's messages."""
        if self._listener is None:
            return await self._receive()
        return await self._messages.get()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    def watch(self, task: asyncio.Task[Any]) -> None:
        if not self.finished:
            self._listener = asyncio.get_running_loop().create_task(self._listen(task))

    async def _listen(self, task: asyncio.Task[Any]) -> None:
        while True:
            message = await self._receive()
            await self._messages.put(message)
            if message["type"] == "http.disconnect":
                if not self.finished:  # after the response, a disconnect is just the end of the exchange
                    self.client_left = True
                    task.cancel()
                return

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()


def _over_budget(budget: float) -> Response:
    return error_response(503, (Issue("timeout", f"The request was stopped when it had run for its time budget of "
                                                 f"{budget * 1000:.0f} ms (FHIR_HUB_REQUEST_BUDGET_MS): narrow it "
                                                 "(_count, _since, search criteria) and page through the results"),))
