"""Vector wrappers: :class:`RecordEpisodes` writes every finished episode to disk.

It works on any ``gymnasium.vector.VectorEnv``: a remote one from ``gymrpc.make_vec``,
``gymnasium.make_vec``, ``SyncVectorEnv``, in all three autoreset modes.

Example:
    >>> import gymrpc
    >>> from gymrpc.recording import load_episodes
    >>> from gymrpc.wrappers import RecordEpisodes
    >>> envs = gymrpc.make_vec("gymrpc/Turbofan-v0", num_envs=8)  # doctest: +SKIP
    >>> envs = RecordEpisodes(envs, "runs/engines")  # doctest: +SKIP
    >>> observations, info = envs.reset(seed=0)  # doctest: +SKIP
    >>> for _ in range(200):  # doctest: +SKIP
    ...     observations, *_ = envs.step(envs.action_space.sample())
    >>> envs.close()  # doctest: +SKIP
    >>> episodes = load_episodes("runs/engines")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from gymrpc.recording import (
    RecordedEpisode,
    RecordingInfo,
    RecordingWriter,
    flatten,
    leaf_names,
    structure_of,
    unflatten,
)

__all__ = ["RecordEpisodes"]

logger = logging.getLogger(__name__)

# Keyword arguments of gymnasium.make_vec found in a spec's kwargs that are not options
# of the environment itself.
_VECTOR_ARGUMENTS: Final = frozenset(
    {"num_envs", "vectorization_mode", "vector_kwargs", "wrappers", "autoreset_mode"}
)
# Rows of buffer space allocated at first, doubled when full.
_INITIAL_ROWS: Final = 64


class _StepBuffer:
    """The batched results of recent calls, one row per ``reset``/``step``, all envs.

    Rows are numbered from the first call (absolute numbers); the buffer keeps those
    from the oldest episode still running and drops the others in bulk. Writing a row
    is one array copy per column whatever ``num_envs``: per-env work happens only when
    an episode ends and its rows are gathered.
    """

    def __init__(self) -> None:
        self.base = 0  # absolute number of the first row kept
        self.size = 0
        self.capacity = 0
        self.columns: dict[str, npt.NDArray[Any]] = {}
        self.infos: list[dict[str, Any]] = []

    def new_row(self, info: dict[str, Any]) -> int:
        """Append a row (its columns are then written) and return its number."""
        if self.size == self.capacity:
            self.capacity = max(_INITIAL_ROWS, 2 * self.capacity)
            for name, column in self.columns.items():
                grown = np.zeros((self.capacity, *column.shape[1:]), dtype=column.dtype)
                grown[: self.size] = column[: self.size]
                self.columns[name] = grown
        self.size += 1
        # A shallow copy: wrappers outside this one may add keys to the dict they get.
        self.infos.append(dict(info))
        return self.base + self.size - 1

    def write(self, name: str, row: int, batch: Any) -> None:
        """Write the batched value of column ``name`` in ``row``."""
        values = np.asarray(batch)
        column = self.columns.get(name)
        if column is None:
            column = np.zeros((self.capacity, *values.shape), dtype=values.dtype)
            self.columns[name] = column
        column[row - self.base] = values

    def gather(self, name: str, rows: npt.NDArray[np.int64], env: int) -> npt.NDArray[Any]:
        """Sub-env ``env``'s values of column ``name`` in ``rows`` (a copy)."""
        gathered: npt.NDArray[Any] = self.columns[name][rows - self.base, env]
        return gathered

    def valid_rows(self, first: int, last: int, env: int) -> npt.NDArray[np.int64]:
        """The rows from ``first`` to ``last`` inclusive that belong to sub-env ``env``."""
        valid = self.columns["valid"][first - self.base : last - self.base + 1, env]
        return np.flatnonzero(valid).astype(np.int64) + first

    def info(self, row: int) -> dict[str, Any]:
        """The vector info of ``row``."""
        return self.infos[row - self.base]

    def drop_before(self, row: int) -> None:
        """Forget rows before ``row``, moving the others when half the buffer is dead."""
        dead = row - self.base
        if dead <= 0:
            return
        if dead >= self.size:
            self.base, self.size = row, 0
            self.infos.clear()
        elif dead >= self.size // 2:
            # Moving only when at least half is dead keeps the copying amortised O(1).
            live = self.size - dead
            for column in self.columns.values():
                column[:live] = column[dead : self.size]
            del self.infos[:dead]
            self.base, self.size = row, live


def _per_env_seeds(seed: Any, num_envs: int) -> list[int | None]:
    """The seed each sub-env's reset gets, as SyncVectorEnv and gymrpc assign them."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(num_envs)]
    return [None if item is None else int(item) for item in seed]


def _sub_info(
    info: Mapping[str, Any], env: int, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Sub-env ``env``'s own info from a vector info (Gymnasium's ``_key`` masks)."""
    result: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or key in skip:
            continue
        mask = info.get("_" + key)
        if mask is not None and not mask[env]:
            continue
        if isinstance(value, Mapping):
            result[key] = _sub_info(value, env)
        elif mask is not None or (isinstance(value, np.ndarray) and value.ndim > 0):
            # Without a mask, only an array over sub-envs can be split between them.
            result[key] = value[env]
    return result


def _stack_values(values: list[Any], present: list[bool]) -> npt.NDArray[Any] | None:
    """Stack one info key over time; absent rows get zeros (or ""). None if impossible."""
    arrays = [np.asarray(value) for value, here in zip(values, present, strict=True) if here]
    if any(array.dtype.kind not in "biufcUS" for array in arrays):
        return None
    if len({array.shape for array in arrays}) > 1:
        return None
    try:
        dtype = np.result_type(*arrays)
    except TypeError:  # strings in some rows, numbers in others
        return None
    filler = np.zeros(arrays[0].shape, dtype=dtype)
    stacked = iter(arrays)
    return np.stack([next(stacked) if here else filler for here in present]).astype(dtype)


def _stack_infos(
    rows: Sequence[Mapping[str, Any]], skipped: set[str], path: str = ""
) -> dict[str, Any]:
    """Gymnasium's vector-info layout over time: ``k`` -> (T + 1, ...) and mask ``_k``."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    result: dict[str, Any] = {}
    for key in keys:
        present = [key in row for row in rows]
        values = [row.get(key) for row in rows]
        if any(isinstance(value, Mapping) for value in values):
            nested = [value if isinstance(value, Mapping) else {} for value in values]
            result[key] = _stack_infos(nested, skipped, f"{path}{key}.")
        else:
            stacked = _stack_values(values, present)
            if stacked is None:
                if path + key not in skipped:
                    skipped.add(path + key)
                    logger.warning(
                        "info key %r holds values that are not numbers, booleans or strings "
                        "of one shape; it is not recorded",
                        path + key,
                    )
                continue
            result[key] = stacked
        result["_" + key] = np.array(present, dtype=np.bool_)
    return result


def _env_description(env: VectorEnv[Any, Any, Any]) -> tuple[str | None, dict[str, Any]]:
    """The env id and options of a remote env (its session) or of a local one (its spec)."""
    unwrapped = env.unwrapped
    env_id = getattr(unwrapped, "env_id", None)
    options = getattr(unwrapped, "env_options", None)
    if isinstance(env_id, str) and isinstance(options, Mapping):
        return env_id, dict(options)
    spec = env.spec
    if spec is None:
        return None, {}
    return spec.id, {k: v for k, v in spec.kwargs.items() if k not in _VECTOR_ARGUMENTS}


class RecordEpisodes(VectorWrapper[Any, Any, Any, Any, Any]):
    """Write every episode that ends to a recording directory (see :mod:`gymrpc.recording`).

    Each finished episode of each sub-environment is written as soon as it ends, with
    its observations (reset and terminal ones included), actions, rewards,
    terminations, truncations and infos, its seed when it started with a seeded
    ``reset``, and the environment's id and options when known. Episodes still running
    at ``close()``, or cut short by an explicit ``reset``, are not written.

    The autoreset mode is read from ``env.metadata["autoreset_mode"]``:

    * ``NEXT_STEP``: the ``step()`` after an episode ended is its sub-env's reset step;
      it belongs to neither episode, and its observation starts the next one.
    * ``SAME_STEP``: the terminal observation and info are ``info["final_obs"]`` and
      ``info["final_info"]``; the step's own observation starts the next episode.
    * ``DISABLED``: episodes start at ``reset()``, including ``reset_mask`` resets.

    Wrap the environment directly (inside observation- or reward-changing wrappers) to
    record what the environment itself returned.

    Args:
        env: The vector environment.
        path: A directory that does not exist yet, or an empty one.
        env_id: The environment id, if it cannot be found (a remote env's session, or a
            local env's spec).
        env_options: The environment's options, likewise.
        observation_labels: Names and units of observation elements, in the format of
            the ``gymrpc.observation_labels`` metadata; by default that metadata, when
            the env has it (a local turbofan does; remotely, see
            ``gymrpc.list_environments()``).
        metadata: Free JSON data to store with the recording (a policy name, ...).
        compress: Compress the episode archives.

    Raises:
        TypeError: If the observation or action space has values that are not
            fixed-shape arrays (or Dict/Tuple of them).
        FileExistsError: If ``path`` exists and is not an empty directory.
    """

    def __init__(
        self,
        env: VectorEnv[Any, Any, Any],
        path: str | os.PathLike[str],
        *,
        env_id: str | None = None,
        env_options: Mapping[str, Any] | None = None,
        observation_labels: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        compress: bool = False,
    ) -> None:
        super().__init__(env)
        # Imported when used: gymrpc/__init__ sets __version__ after its own imports,
        # which may include this module.
        from gymrpc import __version__  # noqa: PLC0415

        self._obs_structure = structure_of(env.single_observation_space, "observation space")
        self._act_structure = structure_of(env.single_action_space, "action space")
        self.autoreset_mode = AutoresetMode(
            env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        )
        found_id, found_options = _env_description(env)
        labels = observation_labels
        if labels is None:
            labels = env.metadata.get("gymrpc.observation_labels")
        info = RecordingInfo(
            env_id=env_id if env_id is not None else found_id,
            env_options=dict(env_options) if env_options is not None else found_options,
            num_envs=env.num_envs,
            autoreset_mode=self.autoreset_mode.value,
            observation_space=str(env.single_observation_space),
            action_space=str(env.single_action_space),
            observation_labels=None if labels is None else [dict(axis) for axis in labels],
            metadata=dict(metadata or {}),
            observation_structure=self._obs_structure,
            action_structure=self._act_structure,
            gymrpc_version=__version__,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._writer = RecordingWriter(path, info, compress=compress)
        self.path = self._writer.path
        n = env.num_envs
        self._buffer = _StepBuffer()
        # Row of the first observation of each sub-env's running episode, -1 if none.
        self._start = np.full(n, -1, dtype=np.int64)
        # NEXT_STEP: the sub-env's episode ended; its next step is its reset step.
        self._reset_next = np.zeros(n, dtype=np.bool_)
        self._seeds: list[int | None] = [None] * n
        self._env_episodes = np.full(n, -1, dtype=np.int64)
        self._skipped_info_keys: set[str] = set()
        self._obs_names = leaf_names(self._obs_structure, "observations")
        self._act_names = leaf_names(self._act_structure, "actions")

    @property
    def episodes_recorded(self) -> int:
        """Episodes written so far."""
        return self._writer.episodes_written

    # --- The Gymnasium API ---------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset like the wrapped env; the reset sub-envs start new episodes.

        Episodes running in the reset sub-envs are dropped, unfinished.
        """
        # Taken before the env's reset, which may pop it from the caller's dict
        # (SyncVectorEnv does); read after it, once the env has validated it.
        mask = None if options is None else options.get("reset_mask")
        observations, info = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        n = self.num_envs
        reset = np.ones(n, dtype=np.bool_) if mask is None else np.array(mask, dtype=np.bool_)
        seeds = _per_env_seeds(seed, n)
        row = self._write_row(observations, info, reset)
        self._start[reset] = row
        self._reset_next[reset] = False
        self._env_episodes[reset] += 1
        for env in np.flatnonzero(reset):
            self._seeds[env] = seeds[env]
        self._drop_finished_rows(row)
        return observations, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step like the wrapped env; write the episodes that end in this step."""
        observations, rewards, terminations, truncations, info = self.env.step(actions)
        row = self._write_row(observations, info, np.ones(self.num_envs, dtype=np.bool_))
        buffer = self._buffer
        for name, leaf in flatten(actions, self._act_structure, "actions"):
            buffer.write(name, row, leaf)
        buffer.write("rewards", row, rewards)
        buffer.write("terminations", row, terminations)
        buffer.write("truncations", row, truncations)

        if self.autoreset_mode is AutoresetMode.NEXT_STEP and self._reset_next.any():
            # This step reset them: it is in no episode, its observation starts the next.
            starting = self._reset_next.copy()
            self._start[starting] = row
            self._env_episodes[starting] += 1
            for env in np.flatnonzero(starting):
                self._seeds[env] = None
            self._reset_next[:] = False

        done = np.asarray(terminations, dtype=np.bool_) | np.asarray(truncations, dtype=np.bool_)
        if done.any():
            for env in np.flatnonzero(done & (self._start >= 0)):
                self._finish(int(env), row, info)
            if self.autoreset_mode is AutoresetMode.NEXT_STEP:
                self._start[done] = -1
                self._reset_next |= done
            elif self.autoreset_mode is AutoresetMode.SAME_STEP:
                self._start[done] = row
                self._env_episodes[done] += 1
                for env in np.flatnonzero(done):
                    self._seeds[env] = None
            else:
                self._start[done] = -1
        self._drop_finished_rows(row)
        return observations, rewards, terminations, truncations, info

    def close(self, **kwargs: Any) -> None:
        """Close the recording (running episodes are not written), then the env."""
        self._writer.close()
        super().close(**kwargs)

    # --- Recording ------------------------------------------------------------------------

    def _write_row(
        self, observations: Any, info: dict[str, Any], valid: npt.NDArray[np.bool_]
    ) -> int:
        buffer = self._buffer
        row = buffer.new_row(info)
        for name, leaf in flatten(observations, self._obs_structure, "observations"):
            buffer.write(name, row, leaf)
        buffer.write("valid", row, valid)
        return row

    def _drop_finished_rows(self, row: int) -> None:
        running = self._start[self._start >= 0]
        self._buffer.drop_before(int(running.min()) if running.size else row + 1)

    def _finish(self, env: int, last: int, info: dict[str, Any]) -> None:
        """Gather sub-env ``env``'s episode, which ended in row ``last``, and write it."""
        buffer = self._buffer
        rows = buffer.valid_rows(int(self._start[env]), last, env)
        same_step = self.autoreset_mode is AutoresetMode.SAME_STEP
        # In SAME_STEP, the last row already holds the next episode's first observation.
        obs_rows = rows[:-1] if same_step else rows
        skip = frozenset({"final_obs", "final_info"}) if same_step else frozenset()
        info_rows = [_sub_info(buffer.info(int(row)), env, skip) for row in obs_rows]
        observations = {name: buffer.gather(name, obs_rows, env) for name in self._obs_names}
        if same_step:
            final_obs = info.get("final_obs")
            if final_obs is None or not info["_final_obs"][env]:
                raise RuntimeError(
                    f"sub-env {env} ended in SAME_STEP mode without info['final_obs']: the "
                    "wrapped env does not follow Gymnasium's SAME_STEP convention"
                )
            for name, leaf in flatten(final_obs[env], self._obs_structure, "observations"):
                column = observations[name]
                terminal = np.asarray(leaf, dtype=column.dtype)[None]
                observations[name] = np.concatenate([column, terminal])
            info_rows.append(_sub_info(info.get("final_info", {}), env))
        step_rows = rows[1:]
        actions = {name: buffer.gather(name, step_rows, env) for name in self._act_names}
        episode = RecordedEpisode(
            observations=unflatten(observations, self._obs_structure, "observations"),
            actions=unflatten(actions, self._act_structure, "actions"),
            rewards=buffer.gather("rewards", step_rows, env),
            terminations=buffer.gather("terminations", step_rows, env).astype(np.bool_),
            truncations=buffer.gather("truncations", step_rows, env).astype(np.bool_),
            infos=_stack_infos(info_rows, self._skipped_info_keys),
            seed=self._seeds[env],
            env_index=env,
            env_episode=int(self._env_episodes[env]),
            episode_id=self._writer.episodes_written,
            recording=self._writer.info,
        )
        self._writer.write(episode)
