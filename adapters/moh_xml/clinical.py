"""XML2-XML5 (drugs, services, results, clinical progress) -> request, event and observation resources.

Each row gets its own idempotency identifier ``{MA_LK}/XMLn/{STT}`` so that a re-sent episode finds its
resources again. Supply-only rows of XML3 (MA_VAT_TU without MA_DICH_VU) are billing lines, not clinical
facts, and are skipped; prices and amounts of every table are ignored.
"""

from __future__ import annotations

from typing import Any

from adapters.moh_xml import codes
from adapters.moh_xml.codes import Row
from adapters.moh_xml.context import Episode, coded, number, when
from adapters.moh_xml.rows import row_keys, split_list
from adapters.normalize import ICD10, LOINC

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PROGRESS_CODE = coded(codes.CS_XML5, "DIEN_BIEN_LS", "Diễn biến lâm sàng")
PROGRESS_PARTS = {"GIAI_DOAN_BENH": "Giai đoạn bệnh", "HOI_CHAN": "Hội chẩn", "PHAU_THUAT": "Phẫu thuật"}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [coded(OBSERVATION_CATEGORY, code, display)]


def map_medications(ep: Episode, rows: list[Row]) -> None:
    """A MedicationRequest per drug row and, when NGAY_TH_YL says it was given, a MedicationAdministration."""
    for key, row in zip(row_keys(rows), rows, strict=True):
        if not (row.get("MA_THUOC") or row.get("TEN_THUOC")):
            ep.warn("XML2.MA_THUOC", f"row {key}: neither MA_THUOC nor TEN_THUOC; skipped")
            continue
        medicine = coded(codes.CS_THUOC, row.get("MA_THUOC"), row.get("TEN_THUOC"),
                         " ".join(filter(None, (row.get("TEN_THUOC"), row.get("HAM_LUONG")))))
        dosage = {"text": "; ".join(filter(None, (row.get("LIEU_DUNG"), row.get("CACH_DUNG")))),
                  "route": {"text": row.get("DUONG_DUNG")}}
        given = when(row, "XML2", "NGAY_TH_YL")
        quantity = number(row.get("SO_LUONG"))
        request = ep.add({
            "resourceType": "MedicationRequest",
            "status": "completed" if ep.finished else "active",
            "intent": "order",
            "medicationCodeableConcept": medicine,
            **ep.subject(),
            "authoredOn": when(row, "XML2", "NGAY_YL"),
            "requester": ep.practitioner(row.get("MA_BAC_SI")),
            "dosageInstruction": [dosage],
            "dispenseRequest": {"quantity": {"value": quantity, "unit": row.get("DON_VI_TINH")}
                                if quantity is not None else None},
        }, ep.row_match("XML2", key))
        if given:
            ep.add({
                "resourceType": "MedicationAdministration",
                "status": "completed",
                "medicationCodeableConcept": medicine,
                "subject": {"reference": ep.patient},
                "context": {"reference": ep.encounter},
                "effectiveDateTime": given,
                # no dosage: R4 mad-1 wants its dose or rate, and XML2 has neither per administration (SO_LUONG
                # is the quantity ordered); the instructions stay on the request's dosageInstruction
                "request": {"reference": request},
            }, ep.row_match("XML2", key, "administration"))


def map_services(ep: Episode, rows: list[Row]) -> None:
    """A Procedure when the service was performed (NGAY_TH_YL or NGAY_KQ), else a ServiceRequest."""
    for key, row in zip(row_keys(rows), rows, strict=True):
        if not row.get("MA_DICH_VU"):
            continue
        service = coded(codes.CS_DVKT, row["MA_DICH_VU"], row.get("TEN_DICH_VU"))
        performed = when(row, "XML3", "NGAY_TH_YL") or when(row, "XML3", "NGAY_KQ")
        ordered = when(row, "XML3", "NGAY_YL")
        reasons = [coded(ICD10, code) for code in split_list(row.get("MA_BENH"))]
        if performed:
            resource = {"resourceType": "Procedure", "status": "completed", "code": service, **ep.subject(),
                        "performedDateTime": performed, "reasonCode": reasons,
                        "performer": [{"actor": ep.practitioner(row.get("NGUOI_THUC_HIEN"))}]}
        else:
            resource = {"resourceType": "ServiceRequest", "status": "completed" if ep.finished else "active",
                        "intent": "order", "code": service, **ep.subject(), "authoredOn": ordered,
                        "requester": ep.practitioner(row.get("MA_BAC_SI")), "reasonCode": reasons}
        ep.add(resource, ep.row_match("XML3", key))


def map_results(ep: Episode, rows: list[Row]) -> None:
    """A laboratory Observation per result row: numeric GIA_TRI as a Quantity, anything else as text."""
    for key, row in zip(row_keys(rows), rows, strict=True):
        chi_so, name = row.get("MA_CHI_SO"), row.get("TEN_CHI_SO")
        code = (coded(codes.CS_CHI_SO, chi_so, name) if chi_so
                else coded(codes.CS_DVKT, row.get("MA_DICH_VU"), name))
        if not code.get("coding") and not name:
            ep.warn("XML4.MA_CHI_SO", f"row {key}: no MA_CHI_SO, MA_DICH_VU or TEN_CHI_SO; skipped")
            continue
        mapped = codes.loinc(chi_so or "")
        if mapped:
            code["coding"].append({"system": LOINC, **mapped})
        raw = row.get("GIA_TRI", "")
        value = number(raw)
        ep.add({
            "resourceType": "Observation",
            "status": "final",
            "category": _category("laboratory", "Laboratory"),
            "code": code,
            **ep.subject(),
            "effectiveDateTime": when(row, "XML4", "NGAY_KQ"),
            "performer": [ep.practitioner(row.get("MA_BS_DOC_KQ"))],
            "valueQuantity": {"value": value, "unit": row.get("DON_VI_DO")} if value is not None else None,
            "valueString": raw if value is None else None,
            "interpretation": [{"text": row.get("KET_LUAN")}],
            "note": [{"text": row.get("MO_TA")}],
        }, ep.row_match("XML4", key))


def map_progress(ep: Episode, rows: list[Row]) -> None:
    """Clinical progress notes as Observations (category exam, valueString, parts as components).

    Why an Observation and not a ClinicalImpression: in R4 ClinicalImpression is a trial-use resource that
    few servers and apps search or display, while an Observation with a text value is normative, is found
    by ``patient`` + ``date`` like every other finding, and keeps GIAI_DOAN_BENH / HOI_CHAN / PHAU_THUAT
    as components of the same note. A DocumentReference would hide the text in an attachment."""
    for key, row in zip(row_keys(rows), rows, strict=True):
        note = row.get("DIEN_BIEN_LS")
        parts = [{"code": coded(codes.CS_XML5, element, label), "valueString": row.get(element)}
                 for element, label in PROGRESS_PARTS.items() if row.get(element)]
        if not note and not parts:
            continue
        ep.add({
            "resourceType": "Observation",
            "status": "final",
            "category": _category("exam", "Exam"),
            "code": PROGRESS_CODE,
            **ep.subject(),
            "effectiveDateTime": when(row, "XML5", "THOI_DIEM_DBLS"),
            "performer": [ep.practitioner(row.get("NGUOI_THUC_HIEN"))],
            "valueString": note,
            "component": parts,
        }, ep.row_match("XML5", key))
