"""How large a session's results are, so that sessions whose results cannot be sent are refused.

gRPC refuses to send a message above ``max_message_bytes``; by then the environments
have stepped and the result is lost. :func:`result_bytes` bounds a step's result from
the observation space when the session is created, where refusing changes nothing.

Text, Sequence and Graph spaces are unbounded: a string, a sequence or a graph can be
as long as the environment makes it. They count only what every value of theirs must
hold (a Text its ``min_length`` bytes, a OneOf its smallest option), so the bound stays
a lower bound, and results above the limit at run time are caught when they are sent
(RESPONSE_TOO_LARGE, see the servicer).
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
#: The int64 index of a OneOf value.
_INDEX_BYTES = 8


def observation_bytes(space: spaces.Space[Any]) -> int:
    """Bytes of numeric and text data every observation holds on the wire, at least.

    Args:
        space: A single sub-environment's observation space.

    Returns:
        The sum of the tensor payloads for fixed-size spaces. Unbounded spaces count
        what every value must hold: a Text ``min_length`` bytes (UTF-8 takes at least
        one byte per character), a Sequence nothing (it may be empty), a Graph nothing
        (Gymnasium accepts graphs without nodes), a OneOf its 8-byte index and its
        smallest option.
    """
    if isinstance(space, spaces.Dict):
        return sum(observation_bytes(child) for child in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(observation_bytes(child) for child in space.spaces)
    if isinstance(space, spaces.MultiBinary | spaces.MultiDiscrete | spaces.Box | spaces.Discrete):
        shape = space.shape or ()
        itemsize = np.dtype(space.dtype).itemsize if space.dtype is not None else 8
        return math.prod(shape) * itemsize
    if isinstance(space, spaces.Text):
        return space.min_length
    if isinstance(space, spaces.OneOf):
        return _INDEX_BYTES + min(observation_bytes(child) for child in space.spaces)
    # Sequence, Graph: nothing is certain.
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
