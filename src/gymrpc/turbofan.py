"""Client-side helpers for ``gymrpc/Turbofan-v0``: its actions and an engine clock.

The observation of the turbofan is seven noisy sensors; what a maintenance policy
also wants to know (how many blocks an engine has flown, and since its last repair) is
in the info, one step at a time. :class:`EngineClock` keeps those counters for a batch,
across autoresets, so that the examples, ``gymrpc plot engine`` and user code share one
definition of "block" (docs/turbofan.md describes the environment).

Example:
    >>> import numpy as np
    >>> clock = EngineClock(2)
    >>> clock.observe({"step": np.array([0, 0]), "repairs": np.array([0, 0])})
    >>> clock.observe({"step": np.array([10, 10]), "repairs": np.array([0, 1])})
    >>> clock.block.tolist(), clock.blocks_since_repair.tolist()
    ([1, 1], [1, 0])
    >>> time_policy(clock).tolist()
    [0, 0]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["KEEP_FLYING", "REPAIR", "SELL", "EngineClock", "time_policy"]

#: The turbofan's actions.
KEEP_FLYING: Final = 0
REPAIR: Final = 1
SELL: Final = 2

ActionArray = npt.NDArray[np.int64]


class EngineClock:
    """Per-engine counters of the current episode, kept from the env's info alone.

    ``block`` is the index (from 0) of the block about to be played, and
    ``blocks_since_repair`` the number of blocks flown since the last repair (or since
    new). Both follow autoresets, because a new episode is recognised by
    ``info["step"] == 0`` and a repair by ``info["repairs"]`` going up, whatever action
    was sent (during a shop visit of a small ``step_size`` the actions are ignored).

    Args:
        num_envs: The batch size.
    """

    def __init__(self, num_envs: int) -> None:
        self.block = np.zeros(num_envs, dtype=np.int64)
        self.blocks_since_repair = np.zeros(num_envs, dtype=np.int64)
        self.repairs = np.zeros(num_envs, dtype=np.int64)

    def observe(self, info: Mapping[str, Any]) -> None:
        """Account for the info of a ``reset`` or of the ``step`` just played."""
        new_episode = np.asarray(info["step"]) == 0
        repairs = np.asarray(info["repairs"], dtype=np.int64)
        repaired = repairs > self.repairs
        self.block = np.where(new_episode, 0, self.block + 1)
        self.blocks_since_repair = np.where(new_episode | repaired, 0, self.blocks_since_repair + 1)
        self.repairs = repairs


def time_policy(clock: EngineClock) -> ActionArray:
    """The time policy: repair after 3 blocks without one, sell in block 36 (from 0).

    With blocks of 10 flights this repairs in blocks 3, 7, ..., 35; it is the best
    baseline that sees only what an agent sees (docs/turbofan.md, "Reference returns").
    """
    actions = np.where(clock.blocks_since_repair >= 3, REPAIR, KEEP_FLYING)
    return np.where(clock.block == 36, SELL, actions).astype(np.int64)
