"""gymrpc: reinforcement-learning environments served over gRPC.

Training code needs one function::

    import gymrpc

    envs = gymrpc.make_vec("gymrpc/Turbofan-v0", num_envs=64)  # a gymnasium VectorEnv

and ``gymrpc.list_environments()`` says what a server serves; ``gymrpc.leaderboard()``,
``gymrpc.scores()`` and ``gymrpc.episodes()`` read the challenge's scores. Given several servers
(``target=[...]``), or a server running several worker processes, ``make_vec`` spreads
the batch over all of them (a :class:`ShardedVectorEnv`, with the same results).

The package also holds the codecs between numpy/Gymnasium and the wire
(:mod:`gymrpc.tensors`, :mod:`gymrpc.values`, :mod:`gymrpc.spaces`), the error types
(:mod:`gymrpc.errors`), the Stable-Baselines3 adapter (:mod:`gymrpc.sb3`, optional)
and the generated protocol (:mod:`gymrpc.v1`).
"""

from gymrpc.catalogue import EnvironmentSpec, list_environments
from gymrpc.errors import GymrpcError
from gymrpc.protocol import PROTOCOL_VERSION
from gymrpc.scoring import (
    Episode,
    Leaderboard,
    LeaderboardEntry,
    Score,
    episodes,
    leaderboard,
    scores,
)
from gymrpc.sharding import ShardedVectorEnv, ShardStats
from gymrpc.vector_env import RemoteVectorEnv, make_vec

__all__ = [
    "PROTOCOL_VERSION",
    "EnvironmentSpec",
    "Episode",
    "GymrpcError",
    "Leaderboard",
    "LeaderboardEntry",
    "RemoteVectorEnv",
    "Score",
    "ShardStats",
    "ShardedVectorEnv",
    "__version__",
    "episodes",
    "leaderboard",
    "list_environments",
    "make_vec",
    "scores",
]

#: The version of the gymrpc distribution (client and server); pyproject.toml reads it.
__version__ = "0.2.0"
