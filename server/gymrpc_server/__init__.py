"""gymrpc_server: the gymrpc gRPC server and its simulators.

Importing this package registers gymrpc's own environments (``gymrpc/Turbofan-v0``)
with Gymnasium, so ``gymnasium.make("gymrpc/Turbofan-v0")`` works after
``import gymrpc_server``.
"""

# One version for client and server: the distribution's, kept in gymrpc.
from gymrpc import __version__
from gymrpc_server.envs import register_envs

__all__ = ["__version__", "register_envs"]

register_envs()
