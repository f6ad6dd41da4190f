"""Backend clients registered as data (``fhir-hub client register``), beside those of the configuration file.

One document per client, ``_id`` = its ``client_id``, holding the registration exactly as the file would
(``facility``, ``scope``, ``jwks`` and/or ``jwks_url``); ``auth/backend.py`` reads and checks it the same way
for both sources, on every token request, so a client removed here gets no new token from any process.
"""

from __future__ import annotations

from typing import Any

from fhir_hub.store.schema import BACKEND_CLIENTS
from fhir_hub.store.transaction import WriteGate


class BackendClientDocs:
    def __init__(self, db: Any, gate: WriteGate) -> None:
        self.collection = db[BACKEND_CLIENTS]
        self.gate = gate

    async def get(self, client_id: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.collection.find_one({"_id": client_id})
        if doc is None:
            return None
        return {"client_id": doc.pop("_id"), **doc}

    async def put(self, registration: dict[str, Any]) -> None:
        """Register a client, or replace its registration (a new key, other scopes)."""
        document = {"_id": registration["client_id"], **{k: v for k, v in registration.items() if k != "client_id"}}
        async with self.gate.shared():  # the _id in the replacement: nx-27017 0.8 upserts without it otherwise
            await self.collection.replace_one({"_id": document["_id"]}, document, upsert=True)

    async def remove(self, client_id: str) -> bool:
        async with self.gate.shared():
            return bool((await self.collection.delete_one({"_id": client_id})).deleted_count)
