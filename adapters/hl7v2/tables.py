"""The mapping tables (``tables/*.json``): HL7 code -> FHIR code, kept as data so that a code a sender uses
differently can be fixed without touching the mapping code. Keys are upper case; ``_about`` says what a
table is for and is never a code."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_DIR = Path(__file__).with_name("tables")


@cache
def table(name: str) -> dict[str, Any]:
    data = json.loads(_DIR.joinpath(f"{name}.json").read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if key != "_about"}
