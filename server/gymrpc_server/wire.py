"""The servicer's edge of the wire: request bodies in, response bytes out.

grpcio runs a method's request deserializer before the servicer; if it raises, grpcio
answers INTERNAL "Exception deserializing request!" with no details, although
errors.proto reserves INTERNAL for faults of the server. :func:`wire_handler` wraps
a method handler so that a body that does not parse reaches the servicer as an
:class:`Undecodable` marker, which is answered with a precise INVALID_ARGUMENT.

It also lets the servicer return responses already serialized (``bytes``): the
servicer serializes results itself to check their size against the message limit, and
serializing them a second time would cost as much again (upb's ``ByteSize`` serializes
too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from grpc_status import rpc_status

from gymrpc.errors import InvalidArgumentError

__all__ = ["Undecodable", "wire_handler"]


class Undecodable:
    """A request body the method's message type could not parse.

    Attributes:
        message_type: Full name of the expected message, e.g. ``gymrpc.v1.StepRequest``.
        cause: What the parser said.
        size: Length of the body in bytes.
    """

    __slots__ = ("cause", "message_type", "size")

    def __init__(self, message_type: str, cause: str, size: int) -> None:
        self.message_type = message_type
        self.cause = cause
        self.size = size

    def error(self) -> InvalidArgumentError:
        """The error a client gets for this body."""
        return InvalidArgumentError(
            f"request: a body of {self.size} bytes is not a valid {self.message_type} "
            f"message ({self.cause}); expected a serialized {self.message_type}",
            field="request",
        )


def _message_type(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    message_type = _message_type(deserializer)

    def deserialize(body: bytes) -> Any:
        try:
            return deserializer(body)
        # The parser raises DecodeError, or RecursionError for deeply nested input; both
        # are the client's fault and become INVALID_ARGUMENT in the servicer's thread.
        except Exception as error:
            return Undecodable(message_type, f"{type(error).__name__}: {error}", len(body))

    return deserialize


def _abort(context: grpc.ServicerContext, body: Undecodable) -> NoReturn:
    context.abort_with_status(rpc_status.to_status(body.error().to_status()))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def _checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Undecodable):
            _abort(context, request)
        yield request


def _passthrough(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        return response if type(response) is bytes else serializer(response)

    return serialize


def wire_handler(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """Return ``handler`` with a lenient deserializer and a bytes-passing serializer.

    Args:
        handler: A method handler whose deserializer may raise on bad bodies.

    Returns:
        An equivalent handler that aborts with INVALID_ARGUMENT for a body that does
        not parse (for a stream: when the servicer reaches that request), and sends
        responses the servicer returns as ``bytes`` as they are.
    """
    if handler.request_deserializer is None:
        return handler
    kwargs: dict[str, Any] = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": _passthrough(handler.response_serializer),
    }
    if handler.request_streaming:
        streaming = handler.stream_stream or handler.stream_unary
        assert streaming is not None  # a streaming handler has one of the two

        def stream_behavior(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return streaming(_checked(requests, context), context)

        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(stream_behavior, **kwargs)
        return grpc.stream_unary_rpc_method_handler(stream_behavior, **kwargs)
    unary = handler.unary_stream or handler.unary_unary
    assert unary is not None  # a unary handler has one of the two

    def unary_behavior(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            _abort(context, request)
        return unary(request, context)

    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(unary_behavior, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary_behavior, **kwargs)
