"""Who is calling: the verified claims of a token turned into the facts every decision needs.

Context claims, as SMART on FHIR defines or this hub adds: ``patient`` (the resident's Patient id, needed by
``patient/`` scopes), ``fhirUser`` (the clinician or resident as a FHIR reference), ``facility`` (the
5-character MoH facility code of a hospital system or clinician, ``MA_CSKCB``) and ``purpose_of_use``
(TREAT by default; ETREAT for emergency, PUBHLTH...). Claims that are malformed make the token unusable
rather than being ignored, so a typo never widens access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_hub.auth.scopes import Scopes
from fhir_hub.fhir.ids import is_valid_id

_FACILITY = re.compile(r"[0-9A-Z]{5}")
_PURPOSE = re.compile(r"[A-Z]{2,16}")
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

    @property
    def patients(self) -> frozenset[str]:
        """Every Patient id the caller's ``patient/`` access covers: the token's ``patient`` and its links."""
        return self.linked | {self.patient} if self.patient is not None else self.linked

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Caller:
        scope_text = claims.get("scope", "")
        if not isinstance(scope_text, str):
            raise InvalidClaims("the scope claim must be a space-separated string")
        scopes = Scopes.parse(scope_text)
        facility = claims.get("facility")
        if facility is not None and (not isinstance(facility, str) or not _FACILITY.fullmatch(facility)):
            raise InvalidClaims("the facility claim must be a 5-character MoH facility code (MA_CSKCB)")
        patient = claims.get("patient")
        if patient is not None and (not isinstance(patient, str) or not is_valid_id(patient)):
            raise InvalidClaims("the patient claim must be a FHIR id")
        if "patient" in scopes.contexts and patient is None:
            raise InvalidClaims("patient/ scopes need a patient claim naming the resident")
        purpose = claims.get("purpose_of_use", "TREAT")
        if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
            raise InvalidClaims("purpose_of_use must be a v3 ActReason code such as TREAT or ETREAT")
        fhir_user = claims.get("fhirUser")
        if fhir_user is not None and not isinstance(fhir_user, str):
            raise InvalidClaims("fhirUser must be a string")
        return cls(subject=str(claims["sub"]), scopes=scopes, facility=facility, patient=patient,
                   fhir_user=fhir_user, purpose=purpose)

    @classmethod
    def hub(cls, name: str) -> Caller:
        """The hub acting on its own behalf; it has no scopes because it is never checked against them."""
        return cls(subject=f"fhir-hub/{name}", scopes=Scopes(()), internal=True)

    @property
    def role(self) -> str:
        if self.internal:
            return "hub"
        contexts = self.scopes.contexts
        return "system" if "system" in contexts else "clinician" if "user" in contexts else "resident"
