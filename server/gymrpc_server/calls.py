"""What a call carries in and out: the caller's identity, and how an error leaves.

The interceptor authenticates a call once (one SHA-256 of the token) and wraps the
method's ``ServicerContext`` in a :class:`CallContext` carrying the identity, so the
servicer never reads credentials itself. Every service ends a failed unary call with
:func:`abort`, the error as a ``google.rpc.Status`` in the standard trailer.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc
from grpc_status import rpc_status

from gymrpc.errors import GymrpcError, InternalServerError
from gymrpc_server.auth import Identity

__all__ = ["CallContext", "abort", "identity_of", "internal_error"]

logger = logging.getLogger(__name__)


class CallContext:
    """A ``grpc.ServicerContext`` with the caller's identity attached.

    Every attribute but ``identity`` and ``raw`` is the wrapped context's.

    Args:
        context: The context gRPC gave the method.
        identity: The authenticated caller.
    """

    __slots__ = ("identity", "raw")

    def __init__(self, context: grpc.ServicerContext, identity: Identity) -> None:
        self.raw = context
        self.identity = identity

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def identity_of(context: grpc.ServicerContext) -> Identity:
    """The identity the interceptor attached to a call's context.

    Raises:
        TypeError: If the context did not come through the interceptor (a wiring bug).
    """
    if not isinstance(context, CallContext):
        raise TypeError("the servicer was called without the gymrpc interceptor")
    return context.identity


def abort(context: grpc.ServicerContext, error: GymrpcError) -> NoReturn:
    """End the call with ``error``'s status, its details in ``grpc-status-details-bin``."""
    context.abort_with_status(rpc_status.to_status(error.to_status()))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def internal_error(error: Exception, where: str) -> GymrpcError:
    """Log an unexpected exception with its traceback; the INTERNAL error to send for it.

    Args:
        error: The exception.
        where: What failed, for the log (``"the scores service"``).
    """
    logger.error("unexpected error in %s", where, exc_info=error)
    return InternalServerError(
        f"the server failed unexpectedly ({type(error).__name__}: {error}); please report it"
    )
