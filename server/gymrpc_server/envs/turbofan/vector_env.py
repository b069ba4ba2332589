"""``TurbofanVectorEnv``: a native ``gymnasium.vector.VectorEnv`` of turbofan engines."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gymrpc_server.envs.turbofan.arguments import batch_actions, check_reset_options, vector_seeds
from gymrpc_server.envs.turbofan.config import (
    RENDER_MODES,
    validate_autoreset_mode,
    validate_config,
    validate_num_envs,
)
from gymrpc_server.envs.turbofan.docs import DOC_METADATA
from gymrpc_server.envs.turbofan.info import vector_info
from gymrpc_server.envs.turbofan.model import TurbofanModel
from gymrpc_server.envs.turbofan.render import RENDER_FPS, TurbofanRenderer
from gymrpc_server.envs.turbofan.rng import EnvStreams
from gymrpc_server.envs.turbofan.spaces import action_space, block_observation_space

__all__ = ["TurbofanVectorEnv"]

ObsArray = npt.NDArray[np.float32]
FrameArray = npt.NDArray[np.uint8]


class TurbofanVectorEnv(VectorEnv[ObsArray, npt.NDArray[np.int64], npt.NDArray[Any]]):
    """A batch of simulated turbofan engines, computed with numpy over the whole batch.

    Each env is an engine that wears out flight after flight. Every ``step`` runs a
    block of ``step_size`` sub-steps (flights, shop days or the sale) for every engine.

    Actions (``MultiDiscrete([3] * num_envs)``), applied at the block's first sub-step,
    the rest of the block being "keep flying":

    * ``0`` keep flying;
    * ``1`` repair: a shop visit of ``shop_days`` (10) sub-steps whatever the
      ``step_size``: no revenue and no wear, observations still emitted (showing the
      restored engine), ``info["in_shop"]`` true. With ``step_size`` 10 the visit is
      exactly the block; with a larger one flights resume inside the block; with a
      smaller one the following blocks are shop days **and their actions are ignored**
      until the visit is over;
    * ``2`` sell: one sub-step, one observation row, reward
      ``50 + 100 clip(1 - D, 0, 1) 0.96^k``, terminated.

    Observations: ``Box((step_size, 9), float32)`` per env, one row per sub-step:
    ``HPC_Tout`` (K), ``HP_Nmech`` (rpm), ``HPC_Tin`` (K), ``LPT_Tin`` (K),
    ``Fuel_flow`` (kg/s), ``HPC_Pout_st`` (Pa), ``LP_Nmech`` (rpm), ``phase_type``
    (0 = cruise), ``DTAMB`` (K). When an episode ends inside a block, the rows after the
    last real one repeat it and ``info["n_valid"]`` counts the real rows. ``reset``
    returns the initial snapshot repeated, with ``n_valid`` 1. Sensor readings saturate
    at the bounds of the space (far beyond anything a default engine reaches).

    Rewards are float64 of shape (num_envs,): the sum over the block's sub-steps of
    flight revenues, the repair cost and the sale price, except that a block in which
    the engine fails is worth exactly ``failure_reward`` (-1000) and stops at the
    failing flight. ``terminated`` (failure or sale) and ``truncated`` (``t`` reached
    ``max_episode_steps``, counted in sub-steps) are bool arrays; both can be true when
    the engine fails or is sold on the last allowed sub-step. An episode therefore
    lasts at most :attr:`episode_step_limit` = ``ceil(max_episode_steps / step_size)``
    ``step()`` calls.

    Info (vector-info convention, every key ``k`` has a bool mask ``_k``):

    * ``step`` (int64): sub-steps of the episode so far, ``t``;
    * ``n_valid`` (int64): real rows of the returned block;
    * ``reason`` (int8): ``0`` running, ``1`` failure, ``2`` sold, ``3`` truncated
      (3 only when the episode was cut without terminating);
    * ``repairs`` (int64): repairs so far, ``k``;
    * ``in_shop`` (bool): the block's last real row was a shop day;
    * only with ``expose_hidden_state=True`` (privileged): ``degradation`` (float64,
      the latent damage D at the last real row) and ``max_degradation`` (float64, the
      engine's hidden failure threshold D_fail).

    Autoreset modes behave exactly like ``SyncVectorEnv`` over :class:`TurbofanEnv`:
    ``NEXT_STEP`` (default) resets an ended env on the next ``step`` (its action
    ignored, reward 0, reset info); ``SAME_STEP`` resets it inside the terminal step and
    puts the terminal block in ``info["final_obs"]`` and its info in
    ``info["final_info"]``; ``DISABLED`` leaves it to ``reset(options={"reset_mask":
    mask})`` and refuses to step an ended env.

    Seeding: ``reset(seed=s)`` seeds env i with ``s + i``, a list gives one seed per env
    (``None`` keeps that env's stream); unseeded resets continue each env's own stream,
    which starts from OS entropy if never seeded. An env's trajectory depends only on
    its seed and its actions, never on ``num_envs`` or the other envs.

    Rendering: with ``render_mode="rgb_array"``, ``render()`` returns one uint8 frame of
    shape (352, 512, 3) per env in a tuple, exactly as ``SyncVectorEnv`` over
    :class:`TurbofanEnv` does: the engine's status, step and repairs, and one panel per
    sensor (and DTAMB) with its last 100 sub-steps of the current episode, each over a
    fixed range (frames compare across engines and time), the background marking shop
    days, the sale, the failing flight and the new engine. Recording the history never
    draws random numbers, so trajectories do not depend on the render mode; without
    one, nothing is recorded.

    The ``metadata`` carries the documentation a gymrpc server sends to remote clients
    (``gymrpc.description``, ``gymrpc.observation_labels``, ``gymrpc.info_keys``,
    ``gymrpc.episode_reason``, ``gymrpc.option_units``; see :mod:`.docs`).

    Args:
        num_envs: Number of engines.
        step_size: Sub-steps per block, 1 to 100.
        max_episode_steps: Sub-steps (flights, shop days) after which an episode is
            truncated. ``gymnasium.make_vec(..., max_episode_steps=N)`` forwards it
            here, while ``gymnasium.make`` keeps it for its own ``TimeLimit`` wrapper,
            which counts blocks (see :class:`TurbofanEnv`).
        expose_hidden_state: Add the privileged info keys.
        params: Overrides of the scalar model parameters by name (see
            :class:`~gymrpc_server.envs.turbofan.params.TurbofanParams`); an unknown
            name is a ``ValueError`` that lists the valid ones.
        render_mode: None (the default) or ``"rgb_array"``.
        autoreset_mode: An ``AutoresetMode`` or its value (``"NextStep"``,
            ``"SameStep"``, ``"Disabled"``).

    Raises:
        TypeError: An option of the wrong type.
        ValueError: An option out of range.

    Example:
        >>> import numpy as np
        >>> from gymrpc_server.envs.turbofan import TurbofanVectorEnv
        >>> envs = TurbofanVectorEnv(num_envs=4, expose_hidden_state=True)
        >>> obs, info = envs.reset(seed=7)
        >>> obs.shape, info["n_valid"].tolist()
        ((4, 10, 9), [1, 1, 1, 1])
        >>> obs, rewards, terminated, truncated, info = envs.step(np.array([0, 0, 1, 2]))
        >>> info["n_valid"].tolist(), info["reason"].tolist(), info["in_shop"].tolist()
        ([10, 10, 10, 1], [0, 0, 0, 2], [False, False, True, False])
        >>> bool(rewards[2] < -400), terminated.tolist()
        (True, [False, False, False, True])
        >>> envs.close()
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium's convention; copied per instance)
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        **DOC_METADATA,
    }

    def __init__(
        self,
        num_envs: int = 1,
        *,
        step_size: int = 10,
        max_episode_steps: int = 1000,
        expose_hidden_state: bool = False,
        params: Mapping[str, float] | None = None,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ) -> None:
        n = validate_num_envs(num_envs)
        config = validate_config(
            step_size=step_size,
            max_episode_steps=max_episode_steps,
            expose_hidden_state=expose_hidden_state,
            params=params,
            render_mode=render_mode,
        )
        self.autoreset_mode = validate_autoreset_mode(autoreset_mode)
        self.num_envs = n
        self.step_size = config.step_size
        self.max_episode_steps = config.max_episode_steps
        self.expose_hidden_state = config.expose_hidden_state
        self.params = config.params
        self.render_mode = config.render_mode
        self.metadata = {
            "render_modes": list(RENDER_MODES),
            "render_fps": RENDER_FPS,
            "autoreset_mode": self.autoreset_mode,
            # reset() validates seeds, options and mask before it changes anything, so
            # a gymrpc server keeps the session usable after refusing bad options.
            "gymrpc.reset_options_checked_first": True,
            # episode_seed_source below: a gymrpc server can choose the seed of every
            # episode, autoresets included (evaluation sessions of the challenge).
            "gymrpc.episode_seed_source": True,
            **DOC_METADATA,
        }
        #: When set, called with the indices (ascending) of the engines starting an
        #: episode without a seed of their own, autoresets included; returns one seed
        #: per index. A gymrpc server's evaluation sessions use it to put the k-th
        #: episode of every user on the same secret engine.
        self.episode_seed_source: Callable[[npt.NDArray[np.intp]], list[int]] | None = None
        self.single_observation_space = block_observation_space(config.step_size, config.params)
        self.single_action_space = action_space()
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)

        self._model = TurbofanModel(n, config.step_size, config.max_episode_steps, config.params)
        self._streams = EnvStreams(n)
        self._all_envs = np.arange(n)
        # The last returned batch: a reset_mask reset returns it for the other envs.
        self._obs: ObsArray = np.zeros(self.observation_space.shape, dtype=np.float32)  # type: ignore[arg-type]
        self._never_reset = np.ones(n, dtype=np.bool_)
        self._started = False  # every env was reset at least once
        # The env's last step ended its episode and it was not reset since (autoreset
        # pending in NEXT_STEP, forbidden to step in DISABLED; never set in SAME_STEP).
        self._ended = np.zeros(n, dtype=np.bool_)
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
        Autoreset steps (``NEXT_STEP``) are not part of an episode.
        """
        return -(-self.max_episode_steps // self.step_size)

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | npt.NDArray[np.integer[Any]] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[ObsArray, dict[str, Any]]:
        """Reset every env, or those of ``options["reset_mask"]``.

        Args:
            seed: None, an int ``s`` (env i gets ``s + i``), or one int/None per env
                (a list, tuple or 1-d integer array).
            options: ``{"reset_mask": mask}`` (bool ndarray of shape (num_envs,)) resets
                only the masked envs; the others keep their current observation and
                are absent from the info masks. The dict is not modified.

        Returns:
            The observation batch (new array) and the vector info of the reset envs.

        Raises:
            RuntimeError: The env is closed.
            TypeError: ``reset_mask`` is not a bool ndarray, or a bad seed or options.
            ValueError: ``reset_mask`` of the wrong shape or all False, a seed list of
                the wrong length, a negative seed or an unknown option.
        """
        self._check_open()
        seeds = vector_seeds(seed, self.num_envs)
        reset_options = check_reset_options(options, ("reset_mask",))
        mask: npt.NDArray[np.bool_] | None = None
        env_indices = self._all_envs
        if "reset_mask" in reset_options:
            mask = self._check_reset_mask(reset_options["reset_mask"])
            env_indices = np.flatnonzero(mask)
            if seeds is not None:
                seeds = [seeds[index] for index in env_indices.tolist()]
        if isinstance(seed, int | np.integer):
            # As Gymnasium's native vector envs do: np_random_seed reports the seed. The
            # engines draw from their own per-env streams, not from this generator.
            self._np_random, self._np_random_seed = seeding.np_random(int(seed))
        self._reset_envs(env_indices, seeds, self._obs)
        self._never_reset[env_indices] = False
        self._started = not self._never_reset.any()
        self._ended[env_indices] = False
        return self._obs.copy(), vector_info(self._model, self.expose_hidden_state, mask)

    def step(
        self, actions: npt.NDArray[np.int64] | list[int]
    ) -> tuple[
        ObsArray,
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        dict[str, Any],
    ]:
        """Run one block of every env.

        Args:
            actions: One action per env: an integer ndarray of shape (num_envs,) (as
                ``action_space.sample()`` gives) or a list of ints.

        Returns:
            ``(obs, rewards, terminations, truncations, info)``, all new arrays.

        Raises:
            TypeError: ``actions`` is a scalar or not array-like.
            ValueError: Wrong length, dtype or an action outside {0, 1, 2}.
            RuntimeError: The env is closed, an env was never reset, or (``DISABLED``
                mode) an env whose episode ended was not reset.
        """
        self._check_open()
        action_array = batch_actions(actions, self.num_envs)
        if not self._started and self._never_reset.any():
            raise RuntimeError(
                f"call reset() before step(): env indices "
                f"{np.flatnonzero(self._never_reset).tolist()} were never reset"
            )
        mode = self.autoreset_mode
        if mode is AutoresetMode.DISABLED and self._ended.any():
            raise RuntimeError(
                f"autoreset is disabled and the episodes of env indices "
                f"{np.flatnonzero(self._ended).tolist()} have ended: reset them with "
                f"reset(options={{'reset_mask': mask}}) before stepping"
            )
        # The renderer records the block before any autoreset starts a new history.
        renderer = self._renderer
        block = self._model.step(action_array) if renderer is None else renderer.step(action_array)
        obs, rewards = block.obs, block.reward
        terminations, truncations = block.terminated, block.truncated
        hidden = self.expose_hidden_state
        extra: dict[str, Any] = {}
        if mode is AutoresetMode.NEXT_STEP:
            if self._ended.any():
                # These envs ended last step: this step resets them instead.
                pending = np.flatnonzero(self._ended)
                self._reset_envs(pending, None, obs)
                rewards[pending] = 0.0
                terminations[pending] = False
                truncations[pending] = False
            self._ended = terminations | truncations
        elif mode is AutoresetMode.SAME_STEP:
            done = terminations | truncations
            if done.any():
                final_obs = np.full(self.num_envs, None, dtype=object)
                done_indices = np.flatnonzero(done)
                for index in done_indices.tolist():
                    final_obs[index] = obs[index].copy()
                extra = {
                    "final_obs": final_obs,
                    "_final_obs": done,
                    "final_info": vector_info(self._model, hidden, done),
                    "_final_info": done.copy(),
                }
                self._reset_envs(done_indices, None, obs)
        else:
            self._ended = terminations | truncations
        np.copyto(self._obs, obs)
        info = vector_info(self._model, hidden)
        info.update(extra)
        return obs, rewards, terminations, truncations, info

    def render(self) -> tuple[FrameArray, ...] | None:
        """The picture of every env, or None without a render mode.

        Returns:
            With ``render_mode="rgb_array"``, a tuple of ``num_envs`` new uint8 arrays of
            shape (352, 512, 3), what ``SyncVectorEnv`` over :class:`TurbofanEnv`
            returns, frame for frame (see the class docstring).
        """
        if self._renderer is None:
            return None
        return tuple(self._renderer.frames())

    def _reset_envs(
        self,
        env_indices: npt.NDArray[np.intp],
        seeds: list[int | None] | None,
        obs: ObsArray,
    ) -> None:
        """Start new episodes at ``env_indices`` and write their first blocks into ``obs``."""
        if seeds is None and self.episode_seed_source is not None:
            seeds = list(self.episode_seed_source(env_indices))
        keys = self._streams.next_episode_keys(env_indices, seeds)
        rows = self._model.reset(env_indices, keys)
        obs[env_indices] = rows[:, None, :]
        if self._renderer is not None:
            self._renderer.start(env_indices, rows)

    def _check_reset_mask(self, reset_mask: object) -> npt.NDArray[np.bool_]:
        # Same checks, exception types and messages as SyncVectorEnv.
        if not isinstance(reset_mask, np.ndarray):
            raise TypeError(
                f"`options['reset_mask']` must be a numpy array, got {type(reset_mask)}"
            )
        if reset_mask.shape != (self.num_envs,):
            raise ValueError(
                f"`options['reset_mask']` must have shape `({self.num_envs},)`, "
                f"got {reset_mask.shape}"
            )
        if reset_mask.dtype != np.bool_:
            raise TypeError(
                f"`options['reset_mask']` must have `dtype=np.bool_`, got {reset_mask.dtype}"
            )
        if not np.any(reset_mask):
            raise ValueError(
                "`options['reset_mask']` must contain a boolean array with at least one "
                f"True value, got reset_mask={reset_mask}"
            )
        return reset_mask.copy()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{self!r} is closed; create a new env")
