"""gymrpc: reinforcement-learning environments served over gRPC.

Training code needs one function::

    import gymrpc

    envs = gymrpc.make_vec("gymrpc/Turbofan-v0", num_envs=64)  # a gymnasium VectorEnv

The package also holds the codecs between numpy/Gymnasium and the wire
(:mod:`gymrpc.tensors`, :mod:`gymrpc.values`, :mod:`gymrpc.spaces`), the error types
(:mod:`gymrpc.errors`), the Stable-Baselines3 adapter (:mod:`gymrpc.sb3`, optional)
and the generated protocol (:mod:`gymrpc.v1`).
"""

from gymrpc.errors import GymrpcError
from gymrpc.protocol import PROTOCOL_VERSION
from gymrpc.vector_env import RemoteVectorEnv, make_vec

__all__ = ["PROTOCOL_VERSION", "GymrpcError", "RemoteVectorEnv", "__version__", "make_vec"]

__version__ = "0.1.0"
