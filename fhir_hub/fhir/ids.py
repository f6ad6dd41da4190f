"""Logical ids and their generation.

FHIR R4 ``id``: ``[A-Za-z0-9\\-\\.]{1,64}``. Ids reach MongoDB keys and URLs, so every id from outside is
checked here before it is used for anything.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from fhir_hub.errors import BadRequest

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")

IdFactory = Callable[[], str]


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def check_id(value: str, *, where: str = "id") -> str:
    if not is_valid_id(value):
        shown = value if len(value) <= 80 else value[:80] + "..."
        raise BadRequest(
            f"{where}: {shown!r} is not a valid FHIR id (1 to 64 characters of A-Z, a-z, 0-9, '-' and '.')",
            expression=[where],
        )
    return value


def new_uuid_id() -> str:
    """The default id factory; tests inject a deterministic one instead."""
    return str(uuid.uuid4())
