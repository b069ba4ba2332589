"""The turbofan maintenance simulator, ``gymrpc/Turbofan-v0``.

A two-spool turbofan engine wears out flight after flight; every block of flights an
agent keeps flying, sends the engine to the shop, or sells it. The model is pure
numpy, vectorized over engines and over the sub-steps of a block, with per-engine
counter-based random streams (see :mod:`.model` and :mod:`.rng`).

* :class:`TurbofanVectorEnv`: the native vector env (all autoreset modes).
* :class:`TurbofanEnv`: one engine, the same model with n = 1.
* :func:`register`: registers ``gymrpc/Turbofan-v0`` with Gymnasium (idempotent).

Reason codes of ``info["reason"]``: :data:`REASON_RUNNING` (0),
:data:`REASON_FAILURE` (1), :data:`REASON_SOLD` (2), :data:`REASON_TRUNCATED` (3).

Both env classes document themselves for remote clients in their ``metadata``
(:mod:`.docs`), say how many ``step()`` calls an episode may take
(``episode_step_limit``) and draw their engines' recent sensor traces with
``render_mode="rgb_array"`` (:mod:`.render`). ``docs/turbofan.md`` is the user reference.

Example:
    >>> import gymnasium
    >>> import gymrpc_server  # registers the env
    >>> envs = gymnasium.make_vec("gymrpc/Turbofan-v0", num_envs=64)
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape
    (64, 10, 9)
    >>> envs.close()
"""

from __future__ import annotations

from typing import Final

import gymnasium

from gymrpc_server.envs.turbofan.env import TurbofanEnv
from gymrpc_server.envs.turbofan.model import (
    KEEP_FLYING,
    REASON_FAILURE,
    REASON_NAMES,
    REASON_RUNNING,
    REASON_SOLD,
    REASON_TRUNCATED,
    REPAIR,
    SELL,
)
from gymrpc_server.envs.turbofan.params import TurbofanParams
from gymrpc_server.envs.turbofan.vector_env import TurbofanVectorEnv

__all__ = [
    "ENV_ID",
    "KEEP_FLYING",
    "REASON_FAILURE",
    "REASON_NAMES",
    "REASON_RUNNING",
    "REASON_SOLD",
    "REASON_TRUNCATED",
    "REPAIR",
    "SELL",
    "TurbofanEnv",
    "TurbofanParams",
    "TurbofanVectorEnv",
    "register",
]

#: The Gymnasium id of the turbofan env.
ENV_ID: Final = "gymrpc/Turbofan-v0"


def register() -> None:
    """Register ``gymrpc/Turbofan-v0`` (single and vector entry points); idempotent.

    The spec has ``max_episode_steps=None``: the env truncates by itself after
    ``max_episode_steps`` sub-steps, whereas a Gymnasium ``TimeLimit`` would count blocks.
    """
    if ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=ENV_ID,
        entry_point="gymrpc_server.envs.turbofan.env:TurbofanEnv",
        vector_entry_point="gymrpc_server.envs.turbofan.vector_env:TurbofanVectorEnv",
        max_episode_steps=None,
        nondeterministic=False,
    )
