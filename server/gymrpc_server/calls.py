"""What the server's interceptor hands the servicer with every call: the caller's identity.

The interceptor authenticates a call once (one SHA-256 of the token) and wraps the
method's ``ServicerContext`` in a :class:`CallContext` carrying the identity, so the
servicer never reads credentials itself.
"""

from __future__ import annotations

from typing import Any

import grpc

from gymrpc_server.auth import Identity

__all__ = ["CallContext", "identity_of"]


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
