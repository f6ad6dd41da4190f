"""The audit middleware: finishes each request's audit record with the status the client really got.

Pure ASGI, so it sees the final status whether a handler answered, an error handler did, or nothing
matched; the record itself is started by the ``Fhir`` dependency once the caller is known (unauthenticated
requests touch no data and are only logged).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_hub.api.budget import CLIENT_CLOSED


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            record = scope.get("state", {}).get("audit")
            if record is not None:
                record.status = CLIENT_CLOSED if scope.get("state", {}).get("client_left") else status
                scope["app"].state.hub.audit.submit(record)
