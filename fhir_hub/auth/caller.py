"""Who is calling: the verified claims of a token turned into the facts every decision needs.

Context claims, as SMART on FHIR defines or this hub adds: ``patient`` (the resident's Patient id, needed by
``patient/`` scopes), ``fhirUser`` (the clinician or resident as a FHIR reference), ``facility`` (the
5-character MoH facility code of a hospital system or clinician, ``MA_CSKCB``) and ``purpose_of_use``
(TREAT by default; ETREAT for emergency, PUBHLTH...). Claims that are malformed make the token unusable
rather than being ignored, so a typo never widens access.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from consent.policy import default_policy
from fhir_hub.auth.scopes import Scopes
from fhir_hub.fhir.ids import is_valid_id

FACILITY_CODE = re.compile(r"[0-9A-Z]{5}")  # a MoH facility code (MA_CSKCB)
PURPOSE_CODE = re.compile(r"[A-Z]{2,16}")  # a v3 ActReason code (TREAT, ETREAT...)
PURPOSES_OF_USE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


class InvalidClaims(ValueError):
    pass


@dataclass(frozen=True)
class Caller:
    subject: str
    scopes: Scopes
    facility: str | None = None
    patient: str | None = None
    fhir_user: str | None = None
    purpose: str = "TREAT"
    internal: bool = False  # the hub itself (demo loader, audit trail): not reachable from a token
    # more Patient records of the same resident, found by patient matching: a compartment is a set of
    # patients, and the resident's access covers each of them
    linked: frozenset[str] = frozenset()
    # why a clinician breaks the glass (``X-Emergency-Reason``, with purpose ETREAT); set per request
    emergency_reason: str | None = None

    @property
    def patients(self) -> frozenset[str]:
        """Every Patient id the caller's ``patient/`` access covers: the token's ``patient`` and its links."""
        return self.linked | {self.patient} if self.patient is not None else self.linked

    @cached_property
    def emergency(self) -> bool:
        """Whether the token asks to break the glass (purpose ETREAT): every entry of such a request is
        flagged in the audit trail, whether the request was allowed or refused."""
        return self.purpose in default_policy().emergency.purposes

    @property
    def operator(self) -> bool:
        """The hub's operator: a system token without a facility (it answers for the hub, not a facility)."""
        return not self.internal and self.role == "system" and self.facility is None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Caller:
        scope_text = claims.get("scope", "")
        if not isinstance(scope_text, str):
            raise InvalidClaims("the scope claim must be a space-separated string")
        scopes = Scopes.parse(scope_text)
        facility = claims.get("facility")
        if facility is not None and (not isinstance(facility, str) or not FACILITY_CODE.fullmatch(facility)):
            raise InvalidClaims("the facility claim must be a 5-character MoH facility code (MA_CSKCB)")
        patient = claims.get("patient")
        if patient is not None and (not isinstance(patient, str) or not is_valid_id(patient)):
            raise InvalidClaims("the patient claim must be a FHIR id")
        if "patient" in scopes.contexts and patient is None:
            raise InvalidClaims("patient/ scopes need a patient claim naming the resident")
        purpose = claims.get("purpose_of_use", "TREAT")
        if not isinstance(purpose, str) or not PURPOSE_CODE.fullmatch(purpose):
            raise InvalidClaims("purpose_of_use must be a v3 ActReason code such as TREAT or ETREAT")
        emergency = default_policy().emergency
        if purpose in emergency.purposes:
            issued, expires = claims.get("iat", claims.get("nbf")), claims.get("exp")
            lifetime = (int(expires) - int(issued)  # without both, a token cannot show it is short-lived
                        if isinstance(issued, int | float) and isinstance(expires, int | float) else None)
            if lifetime is None or lifetime > emergency.max_token_seconds:
                raise InvalidClaims(f"an emergency token (purpose_of_use {purpose}) may live at most "
                                    f"{emergency.max_token_seconds} s from iat to exp; this one lives {lifetime} s")
        fhir_user = claims.get("fhirUser")
        if fhir_user is not None and not isinstance(fhir_user, str):
            raise InvalidClaims("fhirUser must be a string")
        return cls(subject=str(claims["sub"]), scopes=scopes, facility=facility, patient=patient,
                   fhir_user=fhir_user, purpose=purpose)

    def for_request(self, emergency_reason: str | None) -> Caller:
        """The caller of one request, with what its headers add to the token."""
        return dataclasses.replace(self, emergency_reason=emergency_reason) if emergency_reason else self

    @classmethod
    def hub(cls, name: str) -> Caller:
        """The hub acting on its own behalf; it has no scopes because it is never checked against them."""
        return cls(subject=f"fhir-hub/{name}", scopes=Scopes(()), internal=True)

    @cached_property
    def role(self) -> str:
        if self.internal:
            return "hub"
        contexts = self.scopes.contexts
        return "system" if "system" in contexts else "clinician" if "user" in contexts else "resident"
