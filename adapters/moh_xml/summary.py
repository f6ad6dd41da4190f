"""XML1 (TONG_HOP, the visit summary) -> Organization, Patient, Encounter, Conditions, Coverages.

The area codes MATINH/MAHUYEN/MAXA_CU_TRU go to the address as the Vietnam Core administrative-address
extension, as sent (the 2025 reorganisation renumbered them; the text DIA_CHI stays beside them): a ward
health station finds its residents by them (``Patient?address-ward=``).

Not mapped (they stay in the archived payload): money fields (T_TONGCHI_BV, T_BHTT, T_BNTT...), ethnicity,
nationality, occupation, traditional-medicine diagnoses (MA_BENH_YHCT), ICD-9-CM procedures (MA_PTTT_QT),
weight and the department.

The principal diagnosis is marked by ``Encounter.diagnosis.rank = 1`` (the R4 way, no extension needed);
the other diagnoses follow with use "comorbidity".
"""

from __future__ import annotations

from typing import Any

from adapters.moh_xml import codes
from adapters.moh_xml.codes import Row
from adapters.moh_xml.context import Episode, coded, prune, when
from adapters.moh_xml.errors import HosoError
from adapters.moh_xml.rows import split_list
from adapters.normalize import (
    BHYT,
    CCCD,
    HUB,
    ICD10,
    administrative_address,
    birth_year,
    facility_system,
    identifier,
    insurance_card_problems,
    patient_identifiers,
    person_name,
    personal_id_problems,
    phone,
)

DIAGNOSIS_ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
PAYOR = identifier(f"{HUB}/sid/payor", "BHXH-VN")
COVERAGE = f"{HUB}/sid/bhyt-coverage"


def map_summary(ep: Episode, row: Row) -> None:
    organization = ep.organization(ep.facility)
    ep.patient = _patient(ep, row, organization)
    _encounter(ep, row, organization)
    _coverages(ep, row)


def _patient(ep: Episode, row: Row, organization: str) -> str:
    name = person_name(row.get("HO_TEN", ""))
    if name is None:
        raise HosoError("XML1.HO_TEN", "missing: a patient record needs the person's name")
    birth = when({"NGAY_SINH": row.get("NGAY_SINH", "")[:8]}, "XML1", "NGAY_SINH", date_only=True)
    sex = codes.gender(row.get("GIOI_TINH", ""))
    if row.get("GIOI_TINH") and sex is None:
        ep.warn("XML1.GIOI_TINH", f"{row['GIOI_TINH']!r} is not a MoH gender code (1, 2, 3); left out")
    cccd = row.get("SO_CCCD")
    if cccd:
        for problem in personal_id_problems(cccd, birth_year=birth_year(birth), gender=sex):
            ep.warn("XML1.SO_CCCD", problem)
    for card in split_list(row.get("MA_THE_BHYT")):
        for problem in insurance_card_problems(card):
            ep.warn("XML1.MA_THE_BHYT", problem)
    telecom = phone(row["DIEN_THOAI"]) if row.get("DIEN_THOAI") else None
    if row.get("DIEN_THOAI") and telecom is None:
        ep.warn("XML1.DIEN_THOAI", f"{row['DIEN_THOAI']!r} is not a Vietnamese phone number; left out")
    ids = patient_identifiers(cccd=cccd, bhyt=row.get("MA_THE_BHYT"), facility=ep.facility,
                              local_id=row.get("MA_BN"))
    if ids:
        match = ids[0]
    else:  # people without papers still get a record; it cannot link to another episode by itself
        match = ep.row_match("patient")
        ep.warn("XML1.SO_CCCD", "no personal ID, card or patient number: the Patient is keyed on this episode only")
    return ep.add({
        "resourceType": "Patient",
        "identifier": ids,
        "active": True,
        "name": [name],
        "telecom": [{"system": "phone", "value": telecom, "use": "mobile"}] if telecom else None,
        "gender": sex,
        "birthDate": birth,
        "address": [{"use": "home", "text": row.get("DIA_CHI"), "extension": [administrative_address(
            state=row.get("MATINH_CU_TRU"), district=row.get("MAHUYEN_CU_TRU"), ward=row.get("MAXA_CU_TRU"))]}],
        "managingOrganization": {"reference": organization},
    }, match)


def _encounter(ep: Episode, row: Row, organization: str) -> None:
    start = when(row, "XML1", "NGAY_VAO")
    end = when(row, "XML1", "NGAY_RA")
    ep.finished = end is not None
    loai = row.get("MA_LOAI_KCB", "")
    klass = codes.encounter_class(loai)
    if klass is None:
        ep.warn("XML1.MA_LOAI_KCB", f"{loai!r} is not a known MA_LOAI_KCB code; Encounter.class is UNK")
        klass = {"system": codes.NULL_FLAVOR, "code": "UNK", "display": "unknown"}
    encounter: dict[str, Any] = prune({
        "resourceType": "Encounter",
        "meta": {"tag": [{"system": codes.CS_TABLE, "code": table} for table in sorted(ep.tables)]},
        "status": "finished" if end else "in-progress",
        "class": klass,
        "type": [coded(codes.CS_LOAI_KCB, loai, codes.encounter_type_label(loai))],
        "subject": {"reference": ep.patient},
        "period": {"start": start, "end": end},
        "reasonCode": [{"text": row.get("LY_DO_VV")}],
        "hospitalization": {"dischargeDisposition": codes.discharge_disposition(
            row.get("KET_QUA_DTRI", ""), row.get("MA_LOAI_RV", ""))},
        "serviceProvider": {"reference": organization},
    })
    ep.encounter = ep.bundle.add(encounter, identifier(facility_system("ma-lk", ep.facility), ep.ma_lk))
    diagnoses = _conditions(ep, row)
    if diagnoses:
        encounter["diagnosis"] = diagnoses


def _conditions(ep: Episode, row: Row) -> list[dict[str, Any]]:
    """One Condition per ICD-10 code, principal first; the codes are kept exactly as sent."""
    principal = row.get("MA_BENH_CHINH", "")
    if not principal:
        ep.warn("XML1.MA_BENH_CHINH", "no principal diagnosis")
    codes_ = list(dict.fromkeys([principal, *split_list(row.get("MA_BENH_KT"))] if principal
                                else split_list(row.get("MA_BENH_KT"))))
    diagnoses = []
    for rank, code in enumerate(codes_, start=1):
        is_principal = rank == 1 and bool(principal)
        reference = ep.add({
            "resourceType": "Condition",
            "category": [coded(CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")],
            "code": coded(ICD10, code),
            "note": [{"text": row.get("CHAN_DOAN_RV")}] if is_principal else None,
            **ep.subject(),
        }, ep.row_match("condition", code))
        role = ("DD", "Discharge diagnosis") if is_principal else ("CM", "Comorbidity diagnosis")
        diagnoses.append({"condition": {"reference": reference}, "use": coded(DIAGNOSIS_ROLE, *role), "rank": rank})
    return diagnoses


def _coverages(ep: Episode, row: Row) -> None:
    """One Coverage per card; GT_THE_TU / GT_THE_DEN are parallel lists when there are several cards."""
    cards = split_list(row.get("MA_THE_BHYT"))
    if not cards:
        return
    starts, ends = split_list(row.get("GT_THE_TU")), split_list(row.get("GT_THE_DEN"))
    payor = ep.add({"resourceType": "Organization", "identifier": [PAYOR], "active": True,
                    "name": "Bảo hiểm xã hội Việt Nam"}, PAYOR)
    for i, card in enumerate(cards):
        start = starts[i] if i < len(starts) else ""
        end = ends[i] if i < len(ends) else ""
        period = {"start": when({"GT_THE_TU": start}, "XML1", "GT_THE_TU", date_only=True),
                  "end": when({"GT_THE_DEN": end}, "XML1", "GT_THE_DEN", date_only=True)}
        system = CCCD if card.isdigit() and len(card) == 12 else BHYT
        ep.add({
            "resourceType": "Coverage",
            "identifier": [identifier(system, card)],
            "status": "active",
            "subscriberId": card,
            "beneficiary": {"reference": ep.patient},
            "relationship": coded("http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self"),
            "period": period,
            "payor": [{"reference": payor, "display": "Bảo hiểm xã hội Việt Nam"}],
        }, identifier(COVERAGE, f"{card}/{start}-{end}"))
