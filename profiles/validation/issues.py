"""What the validator reports: one finding per element, in the terms of an ``OperationOutcome.issue``.

Kept apart from ``fhir_hub.errors.Issue`` on purpose: ``profiles`` is pure and is called by more than the
hub's write path (``$validate`` lists warnings and information too, which a write never raises).
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING, INFORMATION = "error", "warning", "information"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """``code`` is from the FHIR IssueType value set; ``expression`` the FHIRPath of the element
    (``Observation.component[1].code``); ``message`` names the value set URL or the invariant key."""

    severity: str
    code: str
    expression: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity in (ERROR, "fatal")


def errors(issues: list[ValidationIssue]) -> list[ValidationIssue]:
    return [i for i in issues if i.is_error]
