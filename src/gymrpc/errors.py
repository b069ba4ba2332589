"""Exceptions of gymrpc, and their translation to and from gRPC statuses.

This is the one place where gRPC status codes, gymrpc error reasons (see
``proto/gymrpc/v1/errors.proto``) and Python exceptions meet. The server raises these
exceptions and turns them into a ``google.rpc.Status`` with :meth:`GymrpcError.to_status`;
the client turns a status back into the same exception class with :func:`from_status`.

Each class also derives from the built-in exception a Python user would expect, so
``except ValueError`` catches a bad action and ``except KeyError`` an unknown session:

>>> from gymrpc.errors import InvalidActionError
>>> issubclass(InvalidActionError, ValueError)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "BASE_CLASSES",
    "CLIENT_CLASSES",
    "DOMAIN",
    "REASON_CLASSES",
    "AuthenticationError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "EnvNotFoundError",
    "EnvironmentFailureError",
    "EpisodeEndedError",
    "EvaluationUnavailableError",
    "FailedPreconditionError",
    "GymrpcError",
    "InternalServerError",
    "InvalidActionError",
    "InvalidArgumentError",
    "InvalidNumEnvsError",
    "InvalidOptionError",
    "InvalidResetMaskError",
    "InvalidSeedError",
    "InvalidTensorError",
    "InvalidValueError",
    "NotFoundError",
    "NotSupportedError",
    "NumEnvsLimitError",
    "OutOfOrderError",
    "PermissionDeniedError",
    "ProtocolVersionError",
    "ResetNeededError",
    "ResourceExhaustedError",
    "ResponseTooLargeError",
    "ScoresUnavailableError",
    "ServerBusyError",
    "SessionLimitError",
    "SessionNotFoundError",
    "ShuttingDownError",
    "StepQuotaExhaustedError",
    "TensorTooLargeError",
    "UnavailableError",
    "UnknownAttributeError",
    "UnsupportedAutoresetError",
    "UnsupportedSpaceError",
    "from_rpc_error",
    "from_status",
]

#: ``google.rpc.ErrorInfo.domain`` of every error a gymrpc server sends.
DOMAIN = "gymrpc.v1"

# A status travels in trailers, which gRPC caps at 16 KiB by default; messages echo
# client input (a 5,000-character session id, say), and the message is repeated in the
# details. Clipping keeps every status deliverable: at most 1 KiB of UTF-8 per message,
# 256 bytes per metadata value.
_MAX_MESSAGE_BYTES = 1024
_MAX_METADATA_BYTES = 256


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, saying how much was left out."""
    data = text.encode()
    if len(data) <= limit:
        return text
    head = data[: limit - 40].decode(errors="ignore")
    return f"{head}... ({len(data) - len(head.encode())} more bytes)"


class GymrpcError(Exception):
    """Base class of every gymrpc error.

    Attributes:
        message: A complete sentence naming the field, the value and what was expected.
        reason: The machine-readable reason (an ``ErrorReason`` name without prefix).
        field: The request field at fault, as a dotted path, when there is one.
        metadata: Extra machine-readable context, such as ``session_id``.
        status: The ``google.rpc.Status`` this error was built from, on the client.
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    default_reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        metadata: Mapping[str, str] | None = None,
        status: status_pb2.Status | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field = field
        self.metadata = dict(metadata or {})
        self.status = status

    def __str__(self) -> str:
        # KeyError's default __str__ would wrap the message in quotes.
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments need help to survive copy/pickle in user code.
        return (_rebuild, (type(self), self.message, self.reason, self.field, self.metadata))

    def to_status(self) -> status_pb2.Status:
        """Return the ``google.rpc.Status`` a server sends for this error.

        Returns:
            A status with the code, the message and the details that errors.proto
            promises for this kind of error.
        """
        message = _clip(self.message, _MAX_MESSAGE_BYTES)
        field = None if self.field is None else _clip(self.field, _MAX_METADATA_BYTES)
        status = status_pb2.Status(code=self.code.value[0], message=message)
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)
        info.metadata.update(
            {key: _clip(value, _MAX_METADATA_BYTES) for key, value in self.metadata.items()}
        )
        if field is not None:
            # BadRequest only accompanies INVALID_ARGUMENT; the field is useful for
            # every code (e.g. the option a PERMISSION_DENIED is about).
            info.metadata["field"] = field
        status.details.add().Pack(info)
        if field is not None and self.code is grpc.StatusCode.INVALID_ARGUMENT:
            bad_request = error_details_pb2.BadRequest()
            bad_request.field_violations.add(field=field, description=message)
            status.details.add().Pack(bad_request)
        elif self.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            quota = error_details_pb2.QuotaFailure()
            quota.violations.add(subject=field or self.reason, description=message)
            status.details.add().Pack(quota)
        elif self.code is grpc.StatusCode.NOT_FOUND:
            resource = error_details_pb2.ResourceInfo(
                resource_type=self.reason.removesuffix("_NOT_FOUND").lower(),
                resource_name=info.metadata.get("resource_name", ""),
                description=message,
            )
            status.details.add().Pack(resource)
        return status


def _rebuild(
    cls: type[GymrpcError],
    message: str,
    reason: str,
    field: str | None,
    metadata: dict[str, str],
) -> GymrpcError:
    return cls(message, reason=reason, field=field, metadata=metadata)


class InvalidArgumentError(GymrpcError, ValueError):
    """A request field is malformed (INVALID_ARGUMENT)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"


class InvalidTensorError(InvalidArgumentError):
    """A tensor violates the encoding rules of ``Tensor``."""

    default_reason = "INVALID_TENSOR"


class InvalidValueError(InvalidArgumentError):
    """A ``Value``, ``Space`` or info dict is malformed or cannot be carried."""

    default_reason = "INVALID_VALUE"


class InvalidActionError(InvalidArgumentError):
    """Actions do not fit the batched action space."""

    default_reason = "INVALID_ACTION"


class InvalidResetMaskError(InvalidArgumentError):
    """A reset mask is malformed or selects no sub-environment."""

    default_reason = "INVALID_RESET_MASK"


class InvalidSeedError(InvalidArgumentError):
    """Seeds are malformed."""

    default_reason = "INVALID_SEED"


class InvalidOptionError(InvalidArgumentError):
    """An environment or reset option is unknown, ill-typed or out of range."""

    default_reason = "INVALID_OPTION"


class InvalidNumEnvsError(InvalidArgumentError):
    """``num_envs`` is not a positive number."""

    default_reason = "INVALID_NUM_ENVS"


class UnknownAttributeError(InvalidArgumentError, AttributeError):
    """The sub-environments have no attribute (or method) of that name."""

    default_reason = "UNKNOWN_ATTRIBUTE"


class OutOfOrderError(InvalidArgumentError):
    """A stream request is out of sequence or names another session."""

    default_reason = "OUT_OF_ORDER"


class NotFoundError(GymrpcError, KeyError):
    """Something the request names does not exist for the caller (NOT_FOUND)."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class SessionNotFoundError(NotFoundError):
    """No such session for this caller: never created, closed, expired or not theirs."""

    default_reason = "SESSION_NOT_FOUND"


class EnvNotFoundError(NotFoundError):
    """The environment id is not registered or not served."""

    default_reason = "ENV_NOT_FOUND"


class FailedPreconditionError(GymrpcError, RuntimeError):
    """The session is not in a state that allows the request (FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class ResetNeededError(FailedPreconditionError):
    """The session must be reset before it can step."""

    default_reason = "RESET_REQUIRED"


class EpisodeEndedError(FailedPreconditionError):
    """DISABLED autoreset: a sub-environment ended and was not reset."""

    default_reason = "EPISODE_ENDED"


class UnsupportedSpaceError(FailedPreconditionError, ValueError):
    """A space cannot be described by the protocol (a custom ``Space`` subclass)."""

    default_reason = "UNSUPPORTED_SPACE"


class UnsupportedAutoresetError(FailedPreconditionError, ValueError):
    """The environment cannot run in the requested autoreset mode."""

    default_reason = "UNSUPPORTED_AUTORESET"


class EvaluationUnavailableError(FailedPreconditionError):
    """The environment does not accept evaluation sessions on this server."""

    default_reason = "EVALUATION_UNAVAILABLE"


class ResourceExhaustedError(GymrpcError):
    """A limit or quota is exhausted (RESOURCE_EXHAUSTED)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class NumEnvsLimitError(ResourceExhaustedError, ValueError):
    """``num_envs`` exceeds the server's limit."""

    default_reason = "NUM_ENVS_LIMIT"


class SessionLimitError(ResourceExhaustedError):
    """The caller has as many sessions open as it may."""

    default_reason = "SESSION_LIMIT"


class StepQuotaExhaustedError(ResourceExhaustedError):
    """The caller's step quota is used up."""

    default_reason = "STEP_QUOTA_EXHAUSTED"


class TensorTooLargeError(ResourceExhaustedError, ValueError):
    """A tensor or value declares more elements than accepted."""

    default_reason = "TENSOR_TOO_LARGE"


class ResponseTooLargeError(ResourceExhaustedError, ValueError):
    """Results would exceed the server's max_message_bytes (a session too large)."""

    default_reason = "RESPONSE_TOO_LARGE"


class ServerBusyError(ResourceExhaustedError):
    """The server has no capacity left for this request."""

    default_reason = "SERVER_BUSY"


class AuthenticationError(GymrpcError):
    """The call carries no valid credentials (UNAUTHENTICATED)."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDeniedError(GymrpcError, PermissionError):
    """The caller's role does not allow the request (PERMISSION_DENIED)."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotSupportedError(GymrpcError, NotImplementedError):
    """The server or environment cannot do this (UNIMPLEMENTED)."""

    code = grpc.StatusCode.UNIMPLEMENTED
    default_reason = "NOT_SUPPORTED"


class UnavailableError(GymrpcError, ConnectionError):
    """The server cannot be reached or is not accepting work (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class ShuttingDownError(UnavailableError):
    """The server is stopping and accepts no new work."""

    default_reason = "SHUTTING_DOWN"


class ScoresUnavailableError(UnavailableError):
    """The server cannot record episodes now; evaluation requests must wait."""

    default_reason = "SCORES_UNAVAILABLE"


class ConnectionLostError(UnavailableError):
    """The connection dropped and the client could not re-attach to its session."""

    default_reason = "CONNECTION_LOST"


class DeadlineExceededError(GymrpcError, TimeoutError):
    """A call did not complete within its deadline (DEADLINE_EXCEEDED)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class EnvironmentFailureError(GymrpcError, RuntimeError):
    """The environment's own code raised on the server (INTERNAL).

    The session must be reset before it steps again.
    """

    code = grpc.StatusCode.INTERNAL
    default_reason = "ENVIRONMENT_ERROR"


class InternalServerError(GymrpcError, RuntimeError):
    """The server itself failed (a bug to report), INTERNAL."""

    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"


class ProtocolVersionError(GymrpcError):
    """Client and server speak different major versions of the protocol."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "PROTOCOL_VERSION"


#: The exception class of every ``ErrorReason`` a server sends (errors.proto), one class
#: per reason and one reason per class. ``from_status`` rebuilds errors through it, and
#: a test keeps it equal to the enum.
REASON_CLASSES: dict[str, type[GymrpcError]] = {
    "INVALID_TENSOR": InvalidTensorError,
    "INVALID_VALUE": InvalidValueError,
    "INVALID_ACTION": InvalidActionError,
    "INVALID_RESET_MASK": InvalidResetMaskError,
    "INVALID_SEED": InvalidSeedError,
    "INVALID_OPTION": InvalidOptionError,
    "INVALID_NUM_ENVS": InvalidNumEnvsError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "OUT_OF_ORDER": OutOfOrderError,
    "SESSION_NOT_FOUND": SessionNotFoundError,
    "ENV_NOT_FOUND": EnvNotFoundError,
    "RESET_REQUIRED": ResetNeededError,
    "EPISODE_ENDED": EpisodeEndedError,
    "UNSUPPORTED_SPACE": UnsupportedSpaceError,
    "UNSUPPORTED_AUTORESET": UnsupportedAutoresetError,
    "NUM_ENVS_LIMIT": NumEnvsLimitError,
    "SESSION_LIMIT": SessionLimitError,
    "STEP_QUOTA_EXHAUSTED": StepQuotaExhaustedError,
    "TENSOR_TOO_LARGE": TensorTooLargeError,
    "SERVER_BUSY": ServerBusyError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_SUPPORTED": NotSupportedError,
    "SHUTTING_DOWN": ShuttingDownError,
    "ENVIRONMENT_ERROR": EnvironmentFailureError,
    "INTERNAL": InternalServerError,
    "UNKNOWN_ATTRIBUTE": UnknownAttributeError,
    "RESPONSE_TOO_LARGE": ResponseTooLargeError,
    "EVALUATION_UNAVAILABLE": EvaluationUnavailableError,
    "SCORES_UNAVAILABLE": ScoresUnavailableError,
}
#: Classes no server sends as such: bases that stand for a status code when the reason is
#: unknown (a newer server's, or gRPC's own statuses without details), and errors the
#: client raises itself.
BASE_CLASSES: tuple[type[GymrpcError], ...] = (
    GymrpcError,
    NotFoundError,
    FailedPreconditionError,
    ResourceExhaustedError,
    UnavailableError,
)
CLIENT_CLASSES: tuple[type[GymrpcError], ...] = (
    ConnectionLostError,
    DeadlineExceededError,
    ProtocolVersionError,
)
# Client-side classes round-trip too (a status built from one, as tests do).
_BY_REASON = REASON_CLASSES | {cls.default_reason: cls for cls in BASE_CLASSES + CLIENT_CLASSES}
_BY_CODE: dict[grpc.StatusCode, type[GymrpcError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNIMPLEMENTED: NotSupportedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.INTERNAL: EnvironmentFailureError,
}
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def from_status(status: status_pb2.Status) -> GymrpcError:
    """Rebuild the exception a server meant by a ``google.rpc.Status``.

    Args:
        status: A non-OK status, as sent in a stream response or call trailer.

    Returns:
        An instance of the most specific gymrpc exception class for the status's
        reason (falling back to its code), carrying the server's message.
    """
    code = _CODE_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    reason: str | None = None
    field: str | None = None
    metadata: dict[str, str] = {}
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        # Unpack returns False when the detail holds another message type.
        if detail.Unpack(info) and info.domain == DOMAIN:
            reason = info.reason
            metadata = dict(info.metadata)
            field = metadata.pop("field", field)
        elif detail.Unpack(bad_request) and bad_request.field_violations:
            field = bad_request.field_violations[0].field
    cls = _BY_REASON.get(reason or "")
    if cls is None or cls.code is not code:
        cls = _BY_CODE.get(code, GymrpcError)
    message = status.message or f"the server answered {code.name} without a message"
    return cls(message, reason=reason, field=field, metadata=metadata, status=status)


def from_rpc_error(error: grpc.RpcError) -> GymrpcError:
    """Translate an error raised by a grpcio call into a gymrpc exception.

    Args:
        error: The exception grpcio raised; it is also a ``grpc.Call``.

    Returns:
        The matching gymrpc exception. Rich details are used when the server sent them;
        otherwise the class follows the status code alone.
    """
    # grpcio's exceptions raised by calls are also grpc.Call objects; the type stubs
    # cannot express the intersection, hence the Any.
    call: Any = error
    if callable(getattr(call, "code", None)):
        status = rpc_status.from_call(call)
        if status is not None:
            return from_status(status)
        code: grpc.StatusCode = call.code()
        details = call.details() or f"the call failed with {code.name}"
    else:
        code, details = grpc.StatusCode.UNKNOWN, str(error)
    cls = _BY_CODE.get(code, GymrpcError)
    return cls(details, status=status_pb2.Status(code=code.value[0], message=details))
