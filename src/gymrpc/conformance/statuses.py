"""The error model of errors.proto, checked on every error the kit provokes.

An error reaches a client in two ways: as the status of a call (code and message, and
the ``google.rpc.Status`` serialized in the ``grpc-status-details-bin`` trailer), or
as ``StreamSessionResponse.error`` on the session stream. :class:`ErrorReport` reads
both into one shape; :func:`expect_refusal` checks it against errors.proto ("The error
model") and against what the error table says this request must get
(:class:`Refusal`).

The kit reads the wire itself (no gymrpc client code): a server's own error helpers
cannot hide a mistake from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from gymrpc.conformance.framework import Violation, call_of
from gymrpc.v1 import errors_pb2

__all__ = [
    "DOMAIN",
    "MODEL_RULE",
    "ErrorReport",
    "Refusal",
    "expect_refusal",
    "field_path_problem",
]

#: ``ErrorInfo.domain`` of every gymrpc error.
DOMAIN: Final = "gymrpc.v1"
#: Where the error model is written.
MODEL_RULE: Final = "errors.proto, The error model"
_TABLE_RULE: Final = "errors.proto, the error table"
_DETAILS_KEY: Final = "grpc-status-details-bin"
_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}
_REASONS: Final = frozenset(
    name.removeprefix("ERROR_REASON_")
    for name in errors_pb2.ErrorReason.keys()  # noqa: SIM118 (an enum wrapper, not a dict)
    if name != "ERROR_REASON_UNSPECIFIED"
)
# env_service.proto, "Field paths": path = name { "." name | "[" index "]" }, where a
# name that is not letters, digits and "_" is a quoted JSON string in brackets.
_NAME: Final = r"[A-Za-z0-9_]+"
_STEP: Final = rf'(?:\.{_NAME}|\[[0-9]+\]|\["(?:[^"\\]|\\.)*"\])'
_FIELD_PATH: Final = re.compile(rf"{_NAME}{_STEP}*")


def field_path_problem(path: str) -> str | None:
    """Say why ``path`` breaks the field path grammar, or return ``None``.

    >>> field_path_problem('env_options["my option"]') is None
    True
    >>> field_path_problem("step.actions.[1]")
    "'step.actions.[1]' does not follow path = name { '.' name | '[' index ']' }"
    """
    if _FIELD_PATH.fullmatch(path):
        return None
    return f"{path!r} does not follow path = name {{ '.' name | '[' index ']' }}"


def _unpack(details: list[any_pb2.Any]) -> dict[str, list[object]]:
    found: dict[str, list[object]] = {}
    for kind in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.QuotaFailure,
        error_details_pb2.ResourceInfo,
    ):
        for item in details:
            if item.TypeName() == kind.DESCRIPTOR.full_name:
                message = kind()
                item.Unpack(message)
                found.setdefault(kind.DESCRIPTOR.name, []).append(message)
    return found


@dataclass(frozen=True)
class ErrorReport:
    """One error as a client receives it.

    Attributes:
        where: ``"call"`` for a call's status, ``"stream"`` for a stream response.
        code: The gRPC status code.
        message: The status message.
        status: The ``google.rpc.Status``, or ``None`` when the call carried none.
        status_problem: Why the trailer could not be read, if it could not.
        infos: The ErrorInfo details.
        bad_requests: The BadRequest details.
        quota_failures: The QuotaFailure details.
        resource_infos: The ResourceInfo details.
    """

    where: str
    code: grpc.StatusCode
    message: str
    status: status_pb2.Status | None
    status_problem: str = ""
    infos: list[error_details_pb2.ErrorInfo] = field(default_factory=list)
    bad_requests: list[error_details_pb2.BadRequest] = field(default_factory=list)
    quota_failures: list[error_details_pb2.QuotaFailure] = field(default_factory=list)
    resource_infos: list[error_details_pb2.ResourceInfo] = field(default_factory=list)

    @classmethod
    def from_status(cls, status: status_pb2.Status, *, where: str = "stream") -> ErrorReport:
        """Read a ``google.rpc.Status`` (a stream response's ``error``)."""
        found = _unpack(list(status.details))
        return cls(
            where=where,
            code=_CODES.get(status.code, grpc.StatusCode.UNKNOWN),
            message=status.message,
            status=status,
            infos=found.get("ErrorInfo", []),  # type: ignore[arg-type]
            bad_requests=found.get("BadRequest", []),  # type: ignore[arg-type]
            quota_failures=found.get("QuotaFailure", []),  # type: ignore[arg-type]
            resource_infos=found.get("ResourceInfo", []),  # type: ignore[arg-type]
        )

    @classmethod
    def from_call(cls, error: grpc.RpcError) -> ErrorReport:
        """Read the status of a failed call, trailer included."""
        call = call_of(error)
        if call is None:  # pragma: no cover - grpcio's errors are calls
            return cls("call", grpc.StatusCode.UNKNOWN, str(error), None, "not a gRPC call")
        code, message = call.code(), call.details() or ""
        raw = [
            value
            for key, value in (call.trailing_metadata() or ())
            if key == _DETAILS_KEY and isinstance(value, bytes)
        ]
        if not raw:
            return cls("call", code, message, None, f"no {_DETAILS_KEY} trailer")
        try:
            status = status_pb2.Status.FromString(raw[0])
        except Exception as problem:  # a trailer that is not a Status
            return cls("call", code, message, None, f"{_DETAILS_KEY} does not parse: {problem}")
        report = cls.from_status(status, where="call")
        return cls(
            where="call",
            code=code,
            message=message,
            status=status,
            infos=report.infos,
            bad_requests=report.bad_requests,
            quota_failures=report.quota_failures,
            resource_infos=report.resource_infos,
        )

    @property
    def reason(self) -> str:
        """The ErrorInfo reason, empty without ErrorInfo."""
        return self.infos[0].reason if self.infos else ""

    @property
    def field(self) -> str | None:
        """The field path of ErrorInfo's metadata, if any."""
        if not self.infos or "field" not in self.infos[0].metadata:
            return None
        return self.infos[0].metadata["field"]

    def describe(self) -> str:
        """``CODE (REASON, field F): message``, for failure messages."""
        parts = [self.reason or "no ErrorInfo"]
        if self.field is not None:
            parts.append(f"field {self.field}")
        return f"{self.code.name} ({', '.join(parts)}): {self.message!r}"


@dataclass(frozen=True)
class Refusal:
    """What the error table says a request must get.

    Attributes:
        code: The status code.
        reason: The ErrorReason name without prefix.
        field: The exact field path at fault, if the error names one.
        field_under: Accept any path equal to this one or below it (``reset_mask``
            accepts ``reset_mask.data``): Tensor errors may name the tensor or its
            field.
        mentions: Text the message must contain: the value received.
        metadata: ErrorInfo metadata entries that must be present with these values.
    """

    code: grpc.StatusCode
    reason: str
    field: str | None = None
    field_under: str | None = None
    mentions: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """``CODE (REASON, field F)``."""
        parts = [self.reason]
        if self.field is not None:
            parts.append(f"field {self.field}")
        elif self.field_under is not None:
            parts.append(f"field {self.field_under} or below it")
        return f"{self.code.name} ({', '.join(parts)})"


def _field_matches(path: str | None, refusal: Refusal) -> bool:
    if refusal.field is not None:
        return path == refusal.field
    if refusal.field_under is not None:
        base = refusal.field_under
        return path is not None and (path == base or path.startswith((f"{base}.", f"{base}[")))
    return True


def check_model(report: ErrorReport, subject: str, *, message_format: bool = True) -> None:
    """Check the parts of "The error model" that hold for every gymrpc error.

    Args:
        report: The error.
        subject: What was sent, for the failure message.
        message_format: Also check that the message starts with the field path and a
            colon. The errors.* checks do; checks aimed at other rules leave it to them,
            so that one message wording does not fail every check that meets it.

    Raises:
        Violation: Naming the first rule broken.
    """

    def fail(received: str, expected: str) -> Violation:
        return Violation(subject, received=received, expected=expected, rule=MODEL_RULE)

    if report.status is None:
        raise fail(
            f"{report.code.name} {report.message!r} with {report.status_problem}",
            f"a google.rpc.Status in the {_DETAILS_KEY} trailer",
        )
    if report.where == "call" and (
        report.status.code != report.code.value[0] or report.status.message != report.message
    ):
        raise fail(
            f"a Status of code {report.status.code} and message {report.status.message!r} "
            f"for a call ending {report.code.name} {report.message!r}",
            "the same code and message in the Status as in the call's status",
        )
    if report.code in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN):
        raise fail(f"status code {report.code.name}", "an error code of the error table")
    if len(report.infos) != 1:
        raise fail(
            f"{report.code.name} {report.message!r} with {len(report.infos)} ErrorInfo details",
            f"exactly one google.rpc.ErrorInfo with domain {DOMAIN!r}",
        )
    info = report.infos[0]
    if info.domain != DOMAIN or info.reason not in _REASONS:
        raise fail(
            f"ErrorInfo domain {info.domain!r}, reason {info.reason!r}",
            f"domain {DOMAIN!r} and the name of an ErrorReason value without its prefix",
        )
    if "\n" in report.message or not report.message.strip():
        raise fail(f"message {report.message!r}", "one line of English")
    path = report.field
    if path is not None:
        problem = field_path_problem(path)
        if problem is not None:
            raise Violation(
                subject,
                received=f"ErrorInfo field {problem}",
                expected="a field path",
                rule="env_service.proto, Field paths",
            )
        if message_format and not report.message.startswith(f"{path}:"):
            raise fail(
                f"message {report.message!r} for field {path}",
                f"a message starting with {path + ':'!r}",
            )
    _check_detail_kinds(report, subject, path)


def _check_detail_kinds(report: ErrorReport, subject: str, path: str | None) -> None:
    def fail(received: str, expected: str) -> Violation:
        return Violation(subject, received=received, expected=expected, rule=MODEL_RULE)

    if report.code is grpc.StatusCode.INVALID_ARGUMENT and path is not None:
        violations = [v for bad in report.bad_requests for v in bad.field_violations]
        if len(violations) != 1:
            raise fail(
                f"INVALID_ARGUMENT for field {path} with {len(violations)} BadRequest "
                "field violations",
                "a google.rpc.BadRequest with one field violation",
            )
        (violation,) = violations
        if violation.field != path or violation.description != report.message:
            raise fail(
                f"BadRequest field {violation.field!r}, description {violation.description!r}",
                f"field {path!r} and the status message as description",
            )
    if report.code is grpc.StatusCode.RESOURCE_EXHAUSTED and not report.quota_failures:
        raise fail("RESOURCE_EXHAUSTED without QuotaFailure", "a google.rpc.QuotaFailure")
    if report.code is grpc.StatusCode.NOT_FOUND and not report.resource_infos:
        raise fail("NOT_FOUND without ResourceInfo", "a google.rpc.ResourceInfo")


def expect_refusal(
    report: ErrorReport,
    refusal: Refusal,
    subject: str,
    rule: str = "",
    *,
    message_format: bool = True,
) -> None:
    """Check an error against the error model and against the error table's row.

    Args:
        report: The error received.
        refusal: What the table says.
        subject: What was sent, for the failure message.
        rule: The rule being checked; the error table by default.
        message_format: Check the message's wording too (see :func:`check_model`).

    Raises:
        Violation: Naming what was received and what was expected.
    """
    rule = rule or _TABLE_RULE
    if (
        report.code is not refusal.code
        or report.reason != refusal.reason
        or not _field_matches(report.field, refusal)
    ):
        raise Violation(subject, received=report.describe(), expected=refusal.describe(), rule=rule)
    check_model(report, subject, message_format=message_format)
    info = report.infos[0]
    for key, value in refusal.metadata:
        if info.metadata.get(key) != value:
            raise Violation(
                subject,
                received=f"ErrorInfo metadata {dict(info.metadata)}",
                expected=f"metadata {key!r} = {value!r}",
                rule=rule,
            )
    for text in refusal.mentions if message_format else ():
        if text not in report.message:
            raise Violation(
                subject,
                received=f"message {report.message!r}",
                expected=f"a message that says the value received ({text!r})",
                rule=MODEL_RULE,
            )
