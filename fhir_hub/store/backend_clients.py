"""Backend clients registered as data (``fhir-hub client register``), beside those of the configuration file.

One document per client, ``_id`` = its ``client_id``, holding the registration as the file would have it
(``facility``, ``scope``, ``jwks`` and/or ``jwks_url``) as one JSON text: one request shape whatever the
registration holds (the store contract tests each shape), and nothing of it is ever queried.
``auth/backend.py`` reads and checks it the same way for both sources, on every token request, so a client
removed here gets no new token from any process.
"""

from __future__ import annotations

import json
from typing import Any

from fhir_hub.store.schema import BACKEND_CLIENTS
from fhir_hub.store.transaction import WriteGate


class BackendClientDocs:
    def __init__(self, db: Any, gate: WriteGate) -> None:
        self.collection = db[BACKEND_CLIENTS]
        self.gate = gate

    async def get(self, client_id: str) -> dict[str, Any] | None:
        doc = await self.collection.find_one({"_id": client_id})
        if doc is None or not isinstance(doc.get("reg"), str):
            return None
        registration: dict[str, Any] = json.loads(doc["reg"])
        return {**registration, "client_id": client_id}

    async def put(self, registration: dict[str, Any]) -> None:
        """Register a client, or replace its registration (a new key, other scopes)."""
        text = json.dumps({k: v for k, v in registration.items() if k != "client_id"}, sort_keys=True)
        async with self.gate.shared():
            await self.collection.update_one({"_id": registration["client_id"]}, {"$set": {"reg": text}}, upsert=True)

    async def remove(self, client_id: str) -> bool:
        async with self.gate.shared():
            return bool((await self.collection.delete_one({"_id": client_id})).deleted_count)
