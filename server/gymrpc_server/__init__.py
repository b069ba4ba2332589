"""gymrpc_server: the gymrpc gRPC server and its simulators.

Importing this package registers gymrpc's own environments (``gymrpc/Turbofan-v0``)
with Gymnasium, so ``gymnasium.make("gymrpc/Turbofan-v0")`` works after
``import gymrpc_server``.
"""

from gymrpc_server.envs import register_envs

__version__ = "0.1.0"

register_envs()
