"""The mapping tables (``tables/*.json``) and the hub code systems for MoH codes.

Code lists change by decision (MA_LOAI_KCB gets 16 codes in 2026, QĐ 1227 grows, legacy names linger), so
they are data that a reviewer can read and amend without touching the mapping code. Every lookup returns
None for an unknown code: the caller decides whether that is a warning or a gap.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from adapters.normalize import HUB

TABLES = Path(__file__).with_name("tables")

# Hub code systems for MoH code sets that have no canonical FHIR URI yet.
CS_THUOC = f"{HUB}/CodeSystem/moh-thuoc"  # MA_THUOC, the MoH shared drug codes
CS_DVKT = f"{HUB}/CodeSystem/moh-dvkt"  # MA_DICH_VU, the MoH shared technical-service codes
CS_CHI_SO = f"{HUB}/CodeSystem/moh-qd1227-chi-so"  # MA_CHI_SO, QĐ 1227/2025 lab index codes
CS_LOAI_KCB = f"{HUB}/CodeSystem/moh-loai-kcb"
CS_LYDO_CT = f"{HUB}/CodeSystem/moh-ly-do-chuyen-tuyen"
CS_XML5 = f"{HUB}/CodeSystem/moh-dien-bien"  # the elements of XML5 used as Observation codes
# The tables (LOAIHOSO) an episode was exported with, tagged on its Encounter: a table the hub does not map
# still says what kind of care the episode was (XML6 HIV, XML15 tuberculosis: consent/sensitivity.json).
CS_TABLE = f"{HUB}/CodeSystem/moh-xml-table"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"

Row = dict[str, str]


@cache
def table(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TABLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def layout(loai: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = table("layout").get(loai)
    return found


def current_names(loai: str, row: Row) -> Row:
    """Rename QĐ 4210 elements to their QĐ 130/4750 names; a current name already present wins."""
    renames: dict[str, str] = table("legacy_4210").get(loai, {})
    out = dict(row)
    for old, new in renames.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


def legacy_names(loai: str) -> dict[str, str]:
    """Current name -> QĐ 4210 name for ``loai`` (what the generator writes in legacy mode)."""
    return {new: old for old, new in table("legacy_4210").get(loai, {}).items()}


def _loai_kcb(code: str) -> dict[str, str] | None:
    """The table entry for a MA_LOAI_KCB code; ``1`` is read as ``01`` (some HIS drop the leading zero)."""
    found: dict[str, str] | None = table("encounter_class")["codes"].get(code.zfill(2) if code.isdigit() else code)
    return found


def encounter_class(ma_loai_kcb: str) -> dict[str, str] | None:
    entry = _loai_kcb(ma_loai_kcb)
    system: str = table("encounter_class")["system"]
    return {"system": system, "code": entry["code"], "display": entry["display"]} if entry else None


def encounter_type_label(ma_loai_kcb: str) -> str | None:
    entry = _loai_kcb(ma_loai_kcb)
    return entry["vi"] if entry else None


def gender(code: str) -> str | None:
    found: str | None = table("gender")["codes"].get(code.strip())
    return found


def loinc(ma_chi_so: str) -> dict[str, str] | None:
    found: dict[str, str] | None = table("lab_loinc")["codes"].get(ma_chi_so)
    return found


def discharge_disposition(ket_qua_dtri: str, ma_loai_rv: str) -> dict[str, Any] | None:
    """One CodeableConcept from both MoH codes: each in its hub system, plus the HL7 code where it means
    the same thing, and a text in Vietnamese and English for a reader who knows neither code list."""
    data = table("discharge")
    codings: list[dict[str, str]] = []
    labels: list[str] = []
    hl7: list[str] = []
    for element, code in (("KET_QUA_DTRI", ket_qua_dtri), ("MA_LOAI_RV", ma_loai_rv)):
        entry = data[element]["codes"].get(code)
        if not code:
            continue
        if entry is None:
            codings.append({"system": data[element]["system"], "code": code})
            continue
        codings.append({"system": data[element]["system"], "code": code, "display": entry["vi"]})
        labels.append(f"{entry['vi']} ({entry['en']})")
        if "hl7" in entry:
            hl7.append(entry["hl7"])
    if not codings:
        return None
    if hl7:
        codings.append({"system": data["hl7_system"], "code": hl7[0], "display": data["hl7_display"][hl7[0]]})
    concept: dict[str, Any] = {"coding": codings}
    if labels:
        concept["text"] = "; ".join(labels)
    return concept
