"""How large a session's results are, so that sessions whose results cannot be sent are refused.

gRPC refuses to send a message above ``max_message_bytes``; by then the environments
have stepped and the result is lost. :func:`result_bytes` bounds a step's result from
the observation space when the session is created, where refusing changes nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

__all__ = ["observation_bytes", "result_bytes"]

#: Rewards (float64), terminations and truncations (one byte each) per sub-environment.
_PER_ENV_BYTES = 8 + 1 + 1


def observation_bytes(space: spaces.Space[Any]) -> int:
    """Bytes of one observation's numeric data on the wire (0 for unbounded spaces).

    Args:
        space: A single sub-environment's observation space.

    Returns:
        The sum of the tensor payloads; Text, Graph and Sequence spaces count 0, as
        their size is known only once observed.
    """
    if isinstance(space, spaces.Dict):
        return sum(observation_bytes(child) for child in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(observation_bytes(child) for child in space.spaces)
    if isinstance(space, spaces.MultiBinary | spaces.MultiDiscrete | spaces.Box | spaces.Discrete):
        shape = space.shape or ()
        itemsize = np.dtype(space.dtype).itemsize if space.dtype is not None else 8
        return math.prod(shape) * itemsize
    return 0


def result_bytes(space: spaces.Space[Any], num_envs: int, autoreset_mode: AutoresetMode) -> int:
    """A lower bound on the largest step result of a session, in bytes.

    In SAME_STEP mode every sub-environment may end at once (all truncate together
    after a common reset), and each then carries its final observation too.

    Args:
        space: A single sub-environment's observation space.
        num_envs: The number of sub-environments.
        autoreset_mode: The session's autoreset mode.

    Returns:
        Observation, reward and end-flag bytes of the batch; info is not counted.
    """
    copies = 2 if autoreset_mode is AutoresetMode.SAME_STEP else 1
    return num_envs * (copies * observation_bytes(space) + _PER_ENV_BYTES)
