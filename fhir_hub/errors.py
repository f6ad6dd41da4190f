"""The errors a client can see, each carrying what its OperationOutcome needs.

Code anywhere in the hub raises one of these; a single handler in the app turns it into an
``OperationOutcome`` with the right HTTP status. Keeping status, issue code and element path on the
exception means no handler has to know how to format an error, and no error leaves without a body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One ``OperationOutcome.issue``: ``code`` is from the FHIR IssueType value set."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class HubError(Exception):
    status: int = 500
    code: str = "exception"

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: Sequence[str] = (),
        issues: Sequence[Issue] = (),
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.diagnostics = diagnostics
        self.issues: tuple[Issue, ...] = tuple(issues) or (Issue(self.code, diagnostics, tuple(expression)),)
        self.headers = headers or {}


class BadRequest(HubError):
    status, code = 400, "invalid"


class InvalidResource(HubError):
    """The body is JSON but not a valid FHIR resource of the expected type."""

    status, code = 400, "structure"


class UnprocessableResource(HubError):
    """Parsed fine but breaks a rule of the resource's definition (e.g. a required element is missing)."""

    status, code = 422, "processing"


class Unauthorized(HubError):
    status, code = 401, "login"


class Forbidden(HubError):
    status, code = 403, "forbidden"


class NotFound(HubError):
    status, code = 404, "not-found"


class MethodNotAllowed(HubError):
    status, code = 405, "not-supported"


class NotAcceptable(HubError):
    status, code = 406, "not-supported"


class Conflict(HubError):
    status, code = 409, "conflict"


class Gone(HubError):
    status, code = 410, "deleted"


class PreconditionFailed(HubError):
    status, code = 412, "conflict"


class PayloadTooLarge(HubError):
    status, code = 413, "too-long"


class UnsupportedMediaType(HubError):
    status, code = 415, "not-supported"
