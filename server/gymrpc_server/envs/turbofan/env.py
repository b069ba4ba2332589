"""``TurbofanEnv``: one engine as a ``gymnasium.Env``, on the same vectorized model (n = 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gymrpc_server.envs.turbofan.arguments import check_reset_options, check_seed, single_action
from gymrpc_server.envs.turbofan.config import RENDER_MODES, validate_config
from gymrpc_server.envs.turbofan.docs import DOC_METADATA
from gymrpc_server.envs.turbofan.info import single_info
from gymrpc_server.envs.turbofan.model import TurbofanModel
from gymrpc_server.envs.turbofan.render import RENDER_FPS, TurbofanRenderer
from gymrpc_server.envs.turbofan.rng import EnvStreams
from gymrpc_server.envs.turbofan.spaces import action_space, block_observation_space

__all__ = ["TurbofanEnv"]

ObsArray = npt.NDArray[np.float32]
FrameArray = npt.NDArray[np.uint8]
_ONLY_ENV: Final = np.zeros(1, dtype=np.intp)


class TurbofanEnv(gym.Env[ObsArray, np.int64]):
    """One simulated turbofan engine (``gymrpc/Turbofan-v0``).

    The same model, rules, info keys and reason codes as
    :class:`~gymrpc_server.envs.turbofan.TurbofanVectorEnv`, whose docstring is the
    full reference; this env runs that vectorized model with a single engine, so
    ``SyncVectorEnv`` over these envs gives exactly the vector env's data.

    * Action ``Discrete(3)``: 0 keep flying, 1 repair (a 10-sub-step shop visit; with
      ``step_size`` < 10 the next blocks are shop days and their action is ignored),
      2 sell.
    * Observation ``Box((step_size, 9), float32)``: one row per sub-step; rows after
      the end of an episode repeat the last real one, ``info["n_valid"]`` counts the
      real rows (1 after ``reset``).
    * Reward: the block's revenue, repair cost and sale price, or exactly -1000 for
      a block in which the engine fails.
    * Info: ``step`` (int), ``n_valid`` (int), ``reason`` (``numpy.int8``: 0 running,
      1 failure, 2 sold, 3 truncated), ``repairs`` (int), ``in_shop`` (bool); with
      ``expose_hidden_state=True`` also ``degradation`` and ``max_degradation``
      (float).
    * Stepping after the episode ended, without ``reset``, raises ``RuntimeError``.
    * ``render_mode="rgb_array"``: ``render()`` returns a uint8 ``(352, 512, 3)``
      picture of the engine's last 100 sub-steps (see :class:`TurbofanVectorEnv`).

    Note on ``max_episode_steps`` (counted in sub-steps): an episode lasts at most
    :attr:`episode_step_limit` ``step()`` calls. ``gymnasium.make(id,
    max_episode_steps=N)`` does not pass it to this class but adds a ``TimeLimit`` of N
    *blocks*. To set the env's own limit, construct ``TurbofanEnv(max_episode_steps=N)``
    or use ``gymnasium.make_vec(id, num_envs=..., max_episode_steps=N)``, which forwards
    it to the vector env.

    Args:
        step_size: Sub-steps per block, 1 to 100.
        max_episode_steps: Sub-steps after which an episode is truncated.
        expose_hidden_state: Add the privileged info keys.
        params: Overrides of the scalar model parameters by name.
        render_mode: None (the default) or ``"rgb_array"``.

    Example:
        >>> from gymrpc_server.envs.turbofan import TurbofanEnv
        >>> env = TurbofanEnv(step_size=10)
        >>> obs, info = env.reset(seed=7)
        >>> obs.shape, info["n_valid"], int(info["reason"])
        ((10, 9), 1, 0)
        >>> obs, reward, terminated, truncated, info = env.step(2)
        >>> terminated, info["n_valid"], int(info["reason"]), 100 < reward <= 150
        (True, 1, 2, True)
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium's convention)
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
        **DOC_METADATA,
    }

    def __init__(
        self,
        *,
        step_size: int = 10,
        max_episode_steps: int = 1000,
        expose_hidden_state: bool = False,
        params: Mapping[str, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        config = validate_config(
            step_size=step_size,
            max_episode_steps=max_episode_steps,
            expose_hidden_state=expose_hidden_state,
            params=params,
            render_mode=render_mode,
        )
        self.step_size = config.step_size
        self.max_episode_steps = config.max_episode_steps
        self.expose_hidden_state = config.expose_hidden_state
        self.params = config.params
        self.render_mode = config.render_mode
        self.observation_space = cast(
            "spaces.Space[ObsArray]", block_observation_space(config.step_size, config.params)
        )
        self.action_space = cast("spaces.Space[np.int64]", action_space())
        self._model = TurbofanModel(1, config.step_size, config.max_episode_steps, config.params)
        self._streams = EnvStreams(1)
        self._needs_reset = True
        # Only an env that renders records its blocks.
        self._renderer = (
            None
            if config.render_mode is None
            else TurbofanRenderer(self._model, config.max_episode_steps)
        )

    @property
    def episode_step_limit(self) -> int:
        """The most ``step()`` calls an episode takes: ``ceil(max_episode_steps / step_size)``.

        The last of them is truncated unless the engine failed or was sold before.
        """
        return -(-self.max_episode_steps // self.step_size)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsArray, dict[str, Any]]:
        """Start a new engine.

        Args:
            seed: A non-negative int re-seeds the env's stream; None continues it (OS
                entropy on the very first reset).
            options: None or ``{}``: the env has no reset options.

        Returns:
            The initial snapshot repeated ``step_size`` times, and the info.
        """
        seed = check_seed(seed)
        check_reset_options(options, ())
        super().reset(seed=seed)
        keys = self._streams.next_episode_keys(_ONLY_ENV, None if seed is None else [seed])
        row = self._model.reset(_ONLY_ENV, keys)
        if self._renderer is not None:
            self._renderer.start(_ONLY_ENV, row)
        self._needs_reset = False
        obs = np.repeat(row, self.step_size, axis=0)
        return obs, single_info(self._model, self.expose_hidden_state)

    def step(self, action: object) -> tuple[ObsArray, float, bool, bool, dict[str, Any]]:
        """Run one block of ``step_size`` sub-steps.

        Args:
            action: 0 keep flying, 1 repair, 2 sell (an int or integer numpy scalar).

        Returns:
            ``(obs, reward, terminated, truncated, info)``.

        Raises:
            ValueError: An invalid action.
            RuntimeError: ``reset`` was not called since the episode began or ended.
        """
        value = single_action(action)
        if self._needs_reset:
            raise RuntimeError("call reset() first: the episode has ended (or never started)")
        actions = np.array([value], dtype=np.int64)
        block = (
            self._model.step(actions) if self._renderer is None else self._renderer.step(actions)
        )
        terminated = bool(block.terminated[0])
        truncated = bool(block.truncated[0])
        self._needs_reset = terminated or truncated
        info = single_info(self._model, self.expose_hidden_state)
        return block.obs[0], float(block.reward[0]), terminated, truncated, info

    def render(self) -> FrameArray | None:
        """The engine's picture, or None without a render mode.

        Returns:
            With ``render_mode="rgb_array"``, a new uint8 array of shape (352, 512, 3):
            the status, step and repairs of the engine, and one panel per sensor (and
            DTAMB) with its last 100 sub-steps over a fixed range, shop days, the sale
            and the failing flight marked. Rendering changes nothing in the episode.
        """
        if self._renderer is None:
            return None
        frame: FrameArray = self._renderer.frames()[0]
        return frame
