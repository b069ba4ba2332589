"""``render_mode="rgb_array"`` of the turbofan envs: record the blocks, draw the frames.

An env with a render mode routes its resets and blocks through a
:class:`TurbofanRenderer`, which keeps the recent sub-steps of every engine
(:mod:`.history`) and draws them (:mod:`.chart`). An env without one never creates it,
so rendering costs nothing unless asked for. Recording only reads the model's results:
it draws no random numbers and changes no trajectory.

Example:
    >>> import numpy as np
    >>> from gymrpc_server.envs.turbofan import TurbofanVectorEnv
    >>> envs = TurbofanVectorEnv(num_envs=2, render_mode="rgb_array")
    >>> _ = envs.reset(seed=0)
    >>> _ = envs.step(np.array([0, 1]))
    >>> frames = envs.render()
    >>> len(frames), frames[0].shape, frames[0].dtype
    (2, (352, 512, 3), dtype('uint8'))
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from gymrpc_server.envs.turbofan.chart import FRAME_HEIGHT, FRAME_WIDTH, SensorChart
from gymrpc_server.envs.turbofan.history import SensorHistory, block_kinds, shop_days_ahead
from gymrpc_server.envs.turbofan.model import REASON_RUNNING, BlockResult, TurbofanModel

__all__ = ["FRAME_HEIGHT", "FRAME_WIDTH", "RENDER_FPS", "TurbofanRenderer"]

#: Frames per second of a video of the env: one frame per ``step()`` call.
RENDER_FPS: Final = 10


class TurbofanRenderer:
    """Records every engine's recent sub-steps and draws them as RGB frames.

    Args:
        model: The env's model; the renderer reads its results and state.
        max_episode_steps: The env's option, which sizes the header.
    """

    def __init__(self, model: TurbofanModel, max_episode_steps: int) -> None:
        self._model = model
        self._history = SensorHistory(model.num_envs)
        self._chart = SensorChart(model.params, max_episode_steps)
        self._shop_days = int(model.params.shop_days)

    def start(self, env_indices: npt.NDArray[np.intp], rows: npt.NDArray[np.float32]) -> None:
        """Record the first rows of the engines the model has just reset."""
        self._history.start(env_indices, rows)

    def step(self, actions: npt.NDArray[np.int64]) -> BlockResult:
        """Run the model's block (``TurbofanModel.step``) and record its real rows."""
        model = self._model
        shop_days = shop_days_ahead(model.shop_left, actions, self._shop_days)
        block = model.step(actions)
        kinds = block_kinds(model.n_valid, shop_days, model.reason, model.step_size)
        self._history.record(block.obs, kinds)
        return block

    def frames(self) -> npt.NDArray[np.uint8]:
        """The frame of every engine, uint8 of shape (num_envs, FRAME_HEIGHT, FRAME_WIDTH, 3)."""
        model = self._model
        values, kinds = self._history.recent()
        # Status: 0 flying, 1 in shop, or 1 + the reason code (failed, sold, truncated).
        running = model.in_shop.astype(np.intp)
        status = np.where(model.reason == REASON_RUNNING, running, model.reason.astype(np.intp) + 1)
        return self._chart.draw(values, kinds, model.t, model.repairs, status)
