"""XML13 (referral paper) -> ServiceRequest; XML14 (re-visit appointment paper) -> Appointment.

An R4 Appointment with status ``booked`` must have ``start`` and ``end`` (invariants app-2/app-3), but the
paper only names a day (NGAY_HEN_KL): the appointment spans that whole day in Vietnam time, which is what a
"come back on the 12th" paper means, rather than inventing an hour.
"""

from __future__ import annotations

from adapters.moh_xml.codes import CS_LYDO_CT, Row
from adapters.moh_xml.context import Episode, coded, when
from adapters.moh_xml.errors import HosoError
from adapters.moh_xml.rows import row_keys
from adapters.normalize import VIETNAM_OFFSET, facility_system, identifier

SNOMED = "http://snomed.info/sct"
REFERRAL = coded(SNOMED, "3457005", "Patient referral", "Chuyển tuyến")


def _paper_match(ep: Episode, kind: str, number: str | None, table: str, key: str) -> dict[str, str]:
    """The paper's own number when it has one (unique within the issuing facility), else the row key."""
    return identifier(facility_system(kind, ep.facility), number) if number else ep.row_match(table, key)


def map_referrals(ep: Episode, rows: list[Row]) -> None:
    for key, row in zip(row_keys(rows), rows, strict=True):
        origin = ep.organization(row.get("MA_NOI_DI") or ep.facility)
        target = ep.organization(row["MA_NOI_DEN"]) if row.get("MA_NOI_DEN") else None
        ep.add({
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "category": [REFERRAL],
            "code": {"text": "Chuyển tuyến"},
            **ep.subject(),
            "requester": {"reference": origin},
            "performer": [{"reference": target}] if target else None,
            "reasonCode": [coded(CS_LYDO_CT, row.get("MA_LYDO_CT")), {"text": row.get("CHAN_DOAN_RV")}],
            "note": [{"text": row.get("DAU_HIEU_LS")}],
        }, _paper_match(ep, "so-chuyen-tuyen", row.get("SO_CHUYENTUYEN"), "XML13", key))


def map_appointments(ep: Episode, rows: list[Row]) -> None:
    for key, row in zip(row_keys(rows), rows, strict=True):
        day = when({"NGAY_HEN_KL": row.get("NGAY_HEN_KL", "")[:8]}, "XML14", "NGAY_HEN_KL", date_only=True)
        if day is None:
            ep.warn("XML14.NGAY_HEN_KL", f"row {key}: no appointment date; skipped")
            continue
        if len(day) != 10:
            raise HosoError("XML14.NGAY_HEN_KL", f"{row['NGAY_HEN_KL']!r}: an appointment needs a full date")
        ep.add({
            "resourceType": "Appointment",
            "status": "booked",
            "description": "Hẹn khám lại",
            "reasonCode": [{"text": row.get("CHAN_DOAN_RV")}],
            "start": f"{day}T00:00:00{VIETNAM_OFFSET}",
            "end": f"{day}T23:59:59{VIETNAM_OFFSET}",
            "supportingInformation": [{"reference": ep.encounter}],
            "participant": [{"actor": {"reference": ep.patient}, "status": "accepted", "required": "required"}],
        }, _paper_match(ep, "so-giay-hen", row.get("SO_GIAYHEN_KL"), "XML14", key))
