"""``RemoteVecEnv``: a Stable-Baselines3 ``VecEnv`` whose batch runs on a gymrpc server.

Stable-Baselines3 2.x does not accept a Gymnasium ``VectorEnv``; it has its own
``VecEnv`` API (``reset`` returning observations only, ``step_async``/``step_wait``,
``dones`` instead of terminated/truncated, a list of one info dict per environment with
``terminal_observation`` and ``TimeLimit.truncated``, seeds and options applied at the
next reset). This module translates between that API and :class:`gymrpc.RemoteVectorEnv`
in SAME_STEP autoreset mode, which is the reset semantics SB3 expects, so that a remote
session behaves like SB3's own ``DummyVecEnv`` over the same environments. Actions of
Dict and Tuple spaces come as ``DummyVecEnv`` takes them, a list of one dict or tuple
per environment, or in Gymnasium's batched form.

It needs the optional dependency: ``pip install gymrpc[sb3]``.

Example:
    >>> from stable_baselines3 import PPO  # doctest: +SKIP
    >>> from gymrpc.sb3 import RemoteVecEnv  # doctest: +SKIP
    >>> env = RemoteVecEnv("CartPole-v1", num_envs=8, target="127.0.0.1:50051")  # doctest: +SKIP
    >>> PPO("MlpPolicy", env).learn(total_timesteps=10_000)  # doctest: +SKIP
    >>> env.close()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode

try:
    from stable_baselines3.common.vec_env.base_vec_env import (
        VecEnv,
        VecEnvIndices,
        VecEnvObs,
        VecEnvStepReturn,
    )
except ImportError as error:
    raise ImportError(
        "gymrpc.sb3 needs Stable-Baselines3, an optional dependency of gymrpc; install it "
        "with: pip install gymrpc[sb3]"
    ) from error

from gymrpc.errors import GymrpcError, InvalidActionError, ResetNeededError
from gymrpc.fieldpath import join_key
from gymrpc.modes import autoreset_from_proto, autoreset_to_proto
from gymrpc.vector_env import RemoteVectorEnv, make_vec

__all__ = ["RemoteVecEnv"]

# Gymnasium's vector info stores Python ints, floats and bools in arrays of these
# dtypes; their elements go back to Python scalars, which is what DummyVecEnv's infos
# hold for the usual environment.
_PYTHON_SCALAR_DTYPES = frozenset({np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.bool_)})


class RemoteVecEnv(VecEnv):
    """Stable-Baselines3 ``VecEnv`` over a gymrpc session, like ``DummyVecEnv`` remotely.

    Args:
        env: A registered environment id such as ``"CartPole-v1"`` (a session is
            created with :func:`gymrpc.make_vec` in SAME_STEP autoreset mode), or an
            existing :class:`gymrpc.RemoteVectorEnv` in SAME_STEP mode, which this
            adapter then owns and closes.
        num_envs: Number of sub-environments, with an environment id (default 1).
        **make_vec_kwargs: The keyword arguments of :func:`gymrpc.make_vec` (``target``,
            ``token``, ``seed``, ``vectorization_mode``, ``timeout``, environment
            options...), with an environment id. ``autoreset_mode`` may only be
            SAME_STEP.

    Attributes:
        remote: The :class:`gymrpc.RemoteVectorEnv` underneath.

    Raises:
        ValueError: If the environment's autoreset mode is not SAME_STEP.
        TypeError: If ``env`` is neither a string nor a ``RemoteVectorEnv``, or an
            existing ``RemoteVectorEnv`` comes with ``num_envs`` or keyword arguments.
        GymrpcError: If the server refuses the session (see :func:`gymrpc.make_vec`).

    Rewards are float32 and ``dones`` is ``terminated | truncated``, as in ``DummyVecEnv``.
    Info values that Gymnasium batches as int64, float64 or bool come back as Python
    scalars; other numpy values keep their dtype.

    Example:
        >>> env = RemoteVecEnv("CartPole-v1", 4, target="127.0.0.1:50051")  # doctest: +SKIP
        >>> env.seed(0)  # doctest: +SKIP
        >>> observations = env.reset()  # doctest: +SKIP
        >>> observations, rewards, dones, infos = env.step(np.zeros(4, np.int64))  # doctest: +SKIP
    """

    def __init__(
        self, env: RemoteVectorEnv | str, num_envs: int | None = None, **make_vec_kwargs: Any
    ) -> None:
        if isinstance(env, RemoteVectorEnv):
            if num_envs is not None or make_vec_kwargs:
                raise TypeError(
                    "RemoteVecEnv(env): with an existing RemoteVectorEnv, num_envs and the "
                    f"make_vec arguments {sorted(make_vec_kwargs)} come from env itself; "
                    "pass none of them"
                )
            if env.autoreset_mode is not AutoresetMode.SAME_STEP:
                raise ValueError(
                    f"env: its autoreset_mode is {env.autoreset_mode}; Stable-Baselines3 "
                    "expects AutoresetMode.SAME_STEP (create it with "
                    "gymrpc.make_vec(..., autoreset_mode='SAME_STEP'))"
                )
            remote = env
        elif isinstance(env, str):
            mode = make_vec_kwargs.pop("autoreset_mode", AutoresetMode.SAME_STEP)
            if autoreset_from_proto(autoreset_to_proto(mode)) is not AutoresetMode.SAME_STEP:
                raise ValueError(
                    f"autoreset_mode: {mode!r}; Stable-Baselines3 expects "
                    "AutoresetMode.SAME_STEP (leave autoreset_mode out)"
                )
            remote = make_vec(
                env,
                1 if num_envs is None else num_envs,
                autoreset_mode=AutoresetMode.SAME_STEP,
                **make_vec_kwargs,
            )
        else:
            raise TypeError(
                f"env: got {type(env).__name__}; expected an environment id or a "
                "gymrpc.RemoteVectorEnv"
            )
        self.remote = remote
        self._step_pending = False
        super().__init__(
            remote.num_envs, remote.single_observation_space, remote.single_action_space
        )
        # As DummyVecEnv: the sub-environments' metadata (render modes, fps).
        self.metadata = dict(remote.metadata)

    def __repr__(self) -> str:
        return f"RemoteVecEnv({self.remote.env_id!r}, num_envs={self.num_envs})"

    # --- reset and step ------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        """Reset every sub-environment with the seeds and options set for this reset.

        Seeds from :meth:`seed` and options from :meth:`set_options` apply to this reset
        only and are then forgotten, as in SB3's own vector environments. Per-environment
        options that differ are sent as one masked reset per distinct options dict.

        Returns:
            The batched observations (a dict of arrays for Dict observation spaces);
            the reset infos are in :attr:`reset_infos`.

        Raises:
            ValueError: If per-environment options differ on a session that was never
                reset (its first reset must reset every sub-environment alike).
        """
        self._finish_pending_step()
        seed = None if all(s is None for s in self._seeds) else list(self._seeds)
        groups = _group_options(self._options)
        if len(groups) == 1:
            observations, info = self.remote.reset(seed=seed, options=groups[0][0] or None)
            self.reset_infos = _split_vector_info(info, self.num_envs)
        else:
            for options, mask in groups:
                try:
                    observations, info = self.remote.reset(
                        seed=seed, options={**options, "reset_mask": mask}
                    )
                except ResetNeededError as error:
                    raise ValueError(
                        "set_options: the sub-environments have different options, which "
                        "needs one masked reset per options dict, and this session must "
                        "first be reset as a whole; reset once with common options (or "
                        f"none) first. The server said: {error}"
                    ) from error
                reset_infos = _split_vector_info(info, self.num_envs)
                for index in np.flatnonzero(mask):
                    self.reset_infos[index] = reset_infos[index]
        self._reset_seeds()
        self._reset_options()
        return observations  # type: ignore[no-any-return]

    def step_async(self, actions: np.ndarray) -> None:
        """Send the actions; the server steps while the caller does other work.

        Args:
            actions: One action per sub-environment: an array (a policy's output), or
                for Dict and Tuple action spaces either a list of ``num_envs``
                per-environment dicts or tuples (SB3's convention: ``DummyVecEnv``
                hands ``actions[i]`` to environment ``i``) or Gymnasium's batched form,
                a dict or tuple of batches. A list is always read as per-environment
                actions, as ``DummyVecEnv`` reads it.

        Raises:
            InvalidActionError: (a ``ValueError``) If per-environment actions are not
                ``num_envs`` values of the action space's structure.
        """
        self.remote.step_async(_batched_actions(self.action_space, actions, self.num_envs))
        self._step_pending = True

    def step_wait(self) -> VecEnvStepReturn:
        """Wait for the step sent by :meth:`step_async`.

        Returns:
            ``(observations, rewards, dones, infos)``: the observations of done
            sub-environments are the first of their next episode; ``infos[i]`` holds the
            step's info, ``TimeLimit.truncated`` and, when env ``i`` is done,
            ``terminal_observation``. Their reset infos go to :attr:`reset_infos`.
        """
        self._step_pending = False
        observations, rewards, terminations, truncations, info = self.remote.step_wait()
        dones = terminations | truncations
        # SAME_STEP puts the terminal step's info under "final_info" and the reset info
        # of the same sub-environment at the top level.
        final_observations = info.pop("final_obs", None)
        info.pop("_final_obs", None)
        final_info = info.pop("final_info", {})
        info.pop("_final_info", None)
        top = _split_vector_info(info, self.num_envs)
        final = _split_vector_info(final_info, self.num_envs)
        infos: list[dict[str, Any]] = []
        for index in range(self.num_envs):
            env_info = top[index]
            if dones[index]:
                self.reset_infos[index] = env_info
                env_info = final[index]
            # See https://github.com/openai/gym/issues/3102: SB3 bootstraps from
            # terminal_observation when TimeLimit.truncated is true.
            env_info["TimeLimit.truncated"] = bool(truncations[index] and not terminations[index])
            if dones[index]:
                env_info["terminal_observation"] = final_observations[index]
            infos.append(env_info)
        return observations, rewards.astype(np.float32), dones, infos

    def _finish_pending_step(self) -> None:
        # SB3 lets reset() cancel a pending step; a sent request cannot be recalled, so
        # its answer is awaited and dropped. If the step failed, the reset that follows
        # is what recovers the session, so its error is not worth raising here.
        if self._step_pending:
            self._step_pending = False
            with contextlib.suppress(GymrpcError):
                self.remote.step_wait()

    # --- sub-environment access -------------------------------------------------------------

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Read an attribute of the selected sub-environments.

        ``render_mode`` is answered from the session, without a call: every
        sub-environment has the session's, and the server may reserve attribute access
        to admins. Other names need a server that allows its callers attribute access.

        Args:
            attr_name: The attribute.
            indices: ``None`` (all), an index or an iterable of indices.

        Returns:
            One value per selected sub-environment, in the order of ``indices``.

        Raises:
            AttributeError: If the environments have no such attribute.
            PermissionDeniedError: If the server does not allow attribute access.
        """
        selected = self._indices(indices)
        if attr_name == "render_mode":
            return [self.remote.render_mode] * len(selected)
        return list(self.remote.get_attr(attr_name, selected))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the selected sub-environments to ``value``.

        Args:
            attr_name: The attribute.
            value: The value (a list is one value, not one per sub-environment).
            indices: ``None`` (all), an index or an iterable of indices.

        Raises:
            PermissionDeniedError: If the server does not allow attribute access.
        """
        selected = self._indices(indices)
        # One value for every selected sub-environment, even when it is a list.
        self.remote.set_attr(attr_name, [value] * len(selected), selected)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the selected sub-environments.

        Args:
            method_name: The method.
            *method_args: Its positional arguments.
            indices: ``None`` (all), an index or an iterable of indices.
            **method_kwargs: Its keyword arguments.

        Returns:
            One result per selected sub-environment, in the order of ``indices``.

        Raises:
            AttributeError: If the environments have no such method.
            PermissionDeniedError: If the server does not allow attribute access.
        """
        selected = self._indices(indices)
        return list(self.remote.call_at(selected, method_name, *method_args, **method_kwargs))

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Return False for every selected sub-environment.

        The server's wrappers are not visible to clients, and client-side Gymnasium
        wrappers cannot wrap remote sub-environments; wrap this VecEnv with SB3's
        ``VecMonitor`` (not ``Monitor``) to record episodes.
        """
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        selected = []
        for index in self._get_indices(indices):
            if not -self.num_envs <= index < self.num_envs:
                raise IndexError(
                    f"indices: {index} is not a sub-environment; expected an index in "
                    f"[0, {self.num_envs})"
                )
            selected.append(index % self.num_envs)
        return selected

    # --- rendering and closing ----------------------------------------------------------

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Return one RGB frame per sub-environment, rendered by the server.

        Returns:
            The frames, or ``None`` for each sub-environment (with a warning, as
            ``DummyVecEnv`` does) unless the session's ``render_mode`` is ``"rgb_array"``.
        """
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is "
                "`rgb_array` to obtain images; create the environment with "
                "render_mode='rgb_array'.",
                stacklevel=2,
            )
            return [None] * self.num_envs
        return list(self.remote.render())

    def close(self) -> None:
        """Close the remote session and its connection; idempotent."""
        self.remote.close()


def _batched_actions(space: spaces.Space[Any], actions: Any, num_envs: int) -> Any:
    """Gymnasium's batched form of SB3-style per-environment Dict or Tuple actions.

    ``DummyVecEnv`` indexes the actions by environment, so a list (or a 1-d object
    array) of per-environment dicts or tuples is its convention; Gymnasium's vector
    environments take a dict or tuple of batches instead. For a Dict space a tuple can
    only be per-environment too; for a Tuple space it is Gymnasium's batched form.
    Anything else passes as is.
    """
    if not isinstance(space, spaces.Dict | spaces.Tuple):
        return actions
    per_env = type(actions) is list or (
        isinstance(actions, np.ndarray) and actions.dtype == object and actions.ndim == 1
    )
    if per_env or (isinstance(space, spaces.Dict) and type(actions) is tuple):
        if len(actions) != num_envs:
            raise InvalidActionError(
                f"actions: {len(actions)} actions for {num_envs} sub-environments; "
                f"expected one {type(space).__name__} action per sub-environment",
                field="actions",
            )
        return _stack(space, list(actions), "actions")
    return actions


def _stack(space: spaces.Space[Any], items: list[Any], field: str) -> Any:
    """Stack per-environment values of ``space`` into its batched form.

    Arrays keep the dtype numpy gives the stack of the user's values (float64 actions
    stay float64, as ``DummyVecEnv`` passes them on unchanged); the batch is then
    converted and checked like any other.
    """
    if isinstance(space, spaces.Dict):
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or set(item) != set(space.spaces):
                got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
                raise InvalidActionError(
                    f"{field}[{index}]: got {got}; expected a dict with keys {list(space.spaces)}",
                    field=f"{field}[{index}]",
                )
        return {
            key: _stack(sub, [item[key] for item in items], join_key(field, key))
            for key, sub in space.spaces.items()
        }
    if isinstance(space, spaces.Tuple):
        size = len(space.spaces)
        for index, item in enumerate(items):
            if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != size:
                raise InvalidActionError(
                    f"{field}[{index}]: got {type(item).__name__}; expected a tuple of "
                    f"{size} items",
                    field=f"{field}[{index}]",
                )
        return tuple(
            _stack(sub, [item[position] for item in items], f"{field}[{position}]")
            for position, sub in enumerate(space.spaces)
        )
    if isinstance(space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
        try:
            return np.stack([np.asarray(item) for item in items])
        except ValueError as error:  # ragged or differently shaped actions
            raise InvalidActionError(
                f"{field}: the actions of the sub-environments cannot be stacked ({error}); "
                f"expected one value of {space} each",
                field=field,
            ) from error
    # Text, Sequence, Graph, OneOf: batches are tuples of the values themselves.
    return tuple(items)


def _split_vector_info(info: Mapping[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Split a Gymnasium vector info dict into one info dict per sub-environment.

    Sub-environment ``i`` gets key ``k`` when the mask ``_k`` is true at ``i`` (or there
    is no mask), nested dicts alike. Arrays of int64, float64 and bool give Python
    scalars, other arrays their elements (numpy scalars, copied sub-arrays, objects).

    Args:
        info: The vector info, with its ``_k`` masks.
        num_envs: The batch size.

    Returns:
        ``num_envs`` dicts without masks.
    """
    per_env: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_") and key[1:] in info:
            continue
        mask = info.get(f"_{key}")
        if isinstance(value, Mapping):
            items: Sequence[Any] = _split_vector_info(value, num_envs)
        else:
            items = [_element(value, index) for index in range(num_envs)]
        for index in range(num_envs):
            if mask is None or mask[index]:
                per_env[index][key] = items[index]
    return per_env


def _element(values: np.ndarray, index: int) -> Any:
    item = values[index]
    if isinstance(item, np.ndarray):
        # Each sub-environment's info owns its data, as DummyVecEnv's infos do.
        return item.copy()
    if isinstance(item, np.generic) and values.dtype in _PYTHON_SCALAR_DTYPES:
        return item.item()
    return item


def _group_options(
    options: Sequence[dict[str, Any]],
) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Group sub-environments with equal reset options: ``(options, mask)`` pairs."""
    groups: list[tuple[dict[str, Any], np.ndarray]] = []
    for index, env_options in enumerate(options):
        for group_options, mask in groups:
            if data_equivalence(group_options, env_options, exact=True):
                mask[index] = True
                break
        else:
            mask = np.zeros(len(options), dtype=np.bool_)
            mask[index] = True
            groups.append((env_options, mask))
    return groups
