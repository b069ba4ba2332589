"""One ``VectorEnv`` over many servers: split the batch, fan out, gather.

:class:`ShardedVectorEnv` splits a batch of ``num_envs`` sub-environments into
contiguous shards, one :class:`~gymrpc.vector_env.RemoteVectorEnv` (one session, one
stream) per server, and joins their results into one batch. Topology never changes the
results: sub-environment ``i`` is seeded with ``seed + i`` whichever shard holds it, so
a sharded batch is bit-identical to the same batch on one server, in every autoreset
mode, whenever the environment's vector implementation runs each sub-environment on
its own seed (``SyncVectorEnv``, that is ``vectorization_mode="sync"``, and the
turbofan's native one). A native implementation that draws the whole batch from one
random stream (Gymnasium's CartPole vector env) gives other, equally valid, draws.
:func:`gymrpc.make_vec` builds one when given several targets (a list, a
comma-separated string or ``GYMRPC_TARGET``, a ``dns:///name:port`` name with several
addresses), or a single server that runs several worker processes
(``gymrpc-server --workers N``).

Example:
    >>> import gymrpc
    >>> envs = gymrpc.make_vec(  # doctest: +SKIP
    ...     "gymrpc/Turbofan-v0", 64, target=["10.0.0.1:50051", "10.0.0.2:50051"], seed=0
    ... )
    >>> [(s.target, s.env_indices) for s in envs.shard_stats()]  # doctest: +SKIP
    [('10.0.0.1:50051', range(0, 32)), ('10.0.0.2:50051', range(32, 64))]
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from gymrpc.batching import batch_actions, check_reset_mask, check_seeds
from gymrpc.connection import DEFAULT_TARGET, Connection
from gymrpc.errors import (
    ConnectionLostError,
    FailedPreconditionError,
    GymrpcError,
    InvalidArgumentError,
    InvalidSeedError,
    ResetNeededError,
    ShuttingDownError,
    UnavailableError,
)
from gymrpc.modes import VECTORIZATION_MODES
from gymrpc.vector_env import RemoteVectorEnv, check_session_arguments

__all__ = [
    "ShardStats",
    "ShardedVectorEnv",
    "concatenate_batches",
    "merge_infos",
    "resolve_targets",
    "shard_sizes",
    "split_batch",
    "worker_targets",
]

_T = TypeVar("_T")
_StepResult = tuple[
    Any, npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]
]

# Spaces whose batches are arrays with a leading batch dimension; the others (Text,
# Sequence, Graph, OneOf) batch as tuples of one value per sub-environment.
_ARRAY_SPACES: Final = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_MAX_SEED: Final = (1 << 64) - 1
#: Steps over which :meth:`ShardedVectorEnv.shard_stats` computes percentiles.
STATS_WINDOW: Final = 1024
#: Seconds a shard may take to close when the batch ends because another shard failed.
_FAILURE_CLOSE_TIMEOUT: Final = 1.0
# Errors after which a shard's session cannot be used again: the whole batch ends.
_FATAL: Final = (ConnectionLostError, ShuttingDownError)
# An action field path ends with the sub-environment's index (env_service.proto, "Field
# paths"), which a shard counts from its own first sub-environment.
_TRAILING_INDEX: Final = re.compile(r"\[(\d+)\]$")


# --- targets ---------------------------------------------------------------------------------


def resolve_targets(target: str | Sequence[str] | None) -> list[str]:
    """The servers a batch spans, one ``host:port`` per shard.

    Args:
        target: ``None`` (``GYMRPC_TARGET``, then ``127.0.0.1:50051``), a ``host:port``,
            several separated by commas, a ``dns:///name:port`` target (every address
            the name resolves to is one server), or a sequence of these.

    Returns:
        The targets in order; a ``dns:`` target expands to its addresses, sorted so that
        the placement of sub-environments is stable across calls.

    Raises:
        TypeError: If ``target`` is not a string or a sequence of strings.
        ValueError: If no target remains, or a ``dns:`` target is malformed.
        UnavailableError: If a ``dns:`` name does not resolve.

    Example:
        >>> resolve_targets("10.0.0.1:50051, 10.0.0.2:50051")
        ['10.0.0.1:50051', '10.0.0.2:50051']
    """
    if target is None:
        target = os.environ.get("GYMRPC_TARGET") or DEFAULT_TARGET
    items: object = [target] if isinstance(target, str) else target
    if isinstance(items, bytes | bytearray) or not isinstance(items, Sequence):
        raise TypeError(
            f"target: got {type(target).__name__}; expected 'host:port', several separated "
            "by commas, or a list of them"
        )
    targets: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"target: got {type(item).__name__} {item!r} in the list; expected str")
        for part in item.split(","):
            part = part.strip()  # noqa: PLW2901 - the stripped part is the target
            if part.startswith("dns:"):
                targets += _resolve_dns(part)
            elif part:
                targets.append(part)
    if not targets:
        raise ValueError(f"target: {target!r} names no server; expected 'host:port'")
    return targets


def _resolve_dns(target: str) -> list[str]:
    """Every address of a ``dns:[//]/name:port`` target, as ``host:port`` targets.

    gRPC's own ``dns:`` resolver would balance one channel over the addresses; here each
    address is a server of its own with its own shard (a Kubernetes headless service,
    for instance, names every pod).
    """
    rest = target.removeprefix("dns:")
    if rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        if not slash or authority:
            raise ValueError(
                f"target: {target!r}; a DNS server authority is not supported, expected "
                "'dns:///name:port' (resolved by this machine's resolver)"
            )
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"target: {target!r}; expected 'dns:///name:port'")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnavailableError(
            f"target: {target!r}: the name {host!r} does not resolve ({error.strerror})"
        ) from None
    addresses = {(family, sockaddr[0]) for family, _, _, _, sockaddr in infos}
    ordered = sorted(addresses, key=lambda item: (item[0], ipaddress.ip_address(item[1])))
    return [
        f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
        for family, address in ordered
    ]


def worker_targets(connection: Connection) -> list[str]:
    """The worker processes of a server (``gymrpc-server --workers N``), by a handshake.

    The server lists its workers in ``GetServerInfoResponse.worker_targets``. Workers
    run on one host, so each is reached at the host the caller named, on the listed
    port: that is the name the caller's network and TLS certificate know, whereas the
    listed host may be a wildcard such as ``0.0.0.0``.

    Args:
        connection: A connection to one server (``host:port``).

    Returns:
        The workers' targets in worker order, or the connection's target alone for a
        single process.

    Raises:
        ProtocolVersionError: If the server speaks another major protocol version.
        UnavailableError: If the server cannot be reached.
    """
    target = connection.settings.target
    listed = list(connection.handshake().worker_targets)
    if len(listed) <= 1:
        return [target]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or "/" in host:
        return listed  # not host:port (a gRPC scheme such as unix:): use them as listed
    return [f"{host}:{worker.rpartition(':')[2]}" for worker in listed]


def shard_sizes(
    num_envs: int, num_shards: int, weights: Sequence[float] | None = None
) -> list[int]:
    """Split ``num_envs`` sub-environments into contiguous shards.

    Args:
        num_envs: The batch size.
        num_shards: The number of servers.
        weights: Relative share of each server (e.g. its cores); equal by default.

    Returns:
        One size per shard, summing to ``num_envs``; sizes are as equal as possible (the
        first shards get one more), or proportional to ``weights`` with the remainder
        going to the largest fractions. A size may be 0.

    Raises:
        ValueError: If ``weights`` does not have one finite, non-negative number per
            shard with a positive sum.

    Example:
        >>> shard_sizes(10, 3), shard_sizes(10, 2, [3, 1])
        ([4, 3, 3], [8, 2])
    """
    if weights is None:
        base, extra = divmod(num_envs, num_shards)
        return [base + (1 if shard < extra else 0) for shard in range(num_shards)]
    values = [float(weight) for weight in weights]
    if len(values) != num_shards:
        raise ValueError(
            f"shard_weights: {len(values)} weights for {num_shards} servers; expected one "
            "weight per server"
        )
    if not all(math.isfinite(value) and value >= 0 for value in values) or sum(values) <= 0:
        raise ValueError(
            f"shard_weights: {list(weights)}; expected finite numbers >= 0 with a positive sum"
        )
    exact = [num_envs * value / sum(values) for value in values]
    sizes = [math.floor(share) for share in exact]
    by_fraction = sorted(range(num_shards), key=lambda shard: sizes[shard] - exact[shard])
    for shard in by_fraction[: num_envs - sum(sizes)]:
        sizes[shard] += 1
    return sizes


# --- batches ---------------------------------------------------------------------------------


def concatenate_batches(space: spaces.Space[Any], parts: Sequence[Any]) -> Any:
    """Join consecutive batches of ``space`` into one batch (a new object).

    Args:
        space: The single (unbatched) space.
        parts: Batches in Gymnasium's batched form, in sub-environment order.

    Returns:
        The batch of all of them: arrays concatenated along the first axis, dicts and
        tuples joined item by item, tuples of per-environment values chained.
    """
    if isinstance(space, spaces.Dict):
        return {
            key: concatenate_batches(sub, [p[key] for p in parts]) for key, sub in space.items()
        }
    if isinstance(space, spaces.Tuple):
        return tuple(
            concatenate_batches(sub, [p[position] for p in parts])
            for position, sub in enumerate(space.spaces)
        )
    if isinstance(space, _ARRAY_SPACES) or all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return tuple(itertools.chain.from_iterable(parts))


def split_batch(space: spaces.Space[Any], batch: Any, start: int, stop: int) -> Any:
    """The sub-environments ``start..stop-1`` of a batch of ``space`` (views, no copies).

    Args:
        space: The single (unbatched) space.
        batch: A batch as :func:`gymrpc.batching.batch_actions` returns it.
        start: First sub-environment.
        stop: One past the last.
    """
    if isinstance(space, spaces.Dict):
        return {key: split_batch(sub, batch[key], start, stop) for key, sub in space.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(
            split_batch(sub, batch[position], start, stop)
            for position, sub in enumerate(space.spaces)
        )
    if isinstance(batch, np.ndarray):
        return batch[start:stop]
    return tuple(batch[start:stop])


def merge_infos(
    infos: Sequence[Mapping[str, Any]], bounds: Sequence[tuple[int, int]], num_envs: int
) -> dict[str, Any]:
    """Join the vector infos of consecutive shards into the info of the whole batch.

    The result is what Gymnasium's ``VectorEnv._add_info`` builds for the whole batch:
    every key ``k`` any shard reports gets a value of leading dimension ``num_envs`` and
    a bool mask ``_k``; where a shard does not report ``k`` at all, its rows hold 0 (or
    ``None`` in object arrays, as for ``final_obs``) and its mask is false. Nested info
    dicts (``final_info``, ``episode``) are merged the same way. A value's dtype is that
    of the first shard reporting it, as Gymnasium's is that of the first sub-environment.

    Args:
        infos: One vector info per shard (``{}`` for a shard with nothing to report).
        bounds: ``(start, stop)`` of each shard's sub-environments.
        num_envs: The batch size.

    Returns:
        The merged info (new arrays).
    """
    merged: dict[str, Any] = {}
    keys = dict.fromkeys(
        key
        for info in infos
        for key in info
        if not (key.startswith("_") and key[1:] in info)  # masks travel with their key
    )
    for key in keys:
        present = [(shard, info) for shard, info in enumerate(infos) if key in info]
        first = present[0][1][key]
        if isinstance(first, Mapping):
            value: Any = merge_infos([info.get(key, {}) for info in infos], bounds, num_envs)
        else:
            first = np.asarray(first)
            if any(np.asarray(info[key]).dtype == object for _, info in present):
                value = np.full(num_envs, None, dtype=object)
            else:
                value = np.zeros((num_envs, *first.shape[1:]), dtype=first.dtype)
            for shard, info in present:
                start, stop = bounds[shard]
                value[start:stop] = info[key]
        mask = np.zeros(num_envs, dtype=np.bool_)
        for shard, info in present:
            start, stop = bounds[shard]
            mask[start:stop] = info.get(f"_{key}", True)
        merged[key] = value
        merged[f"_{key}"] = mask
    return merged


# --- statistics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardStats:
    """How one shard's steps went: where to look when the batch is slow.

    A step's latency runs from sending the shard its actions to having its decoded
    result. The client waits for the shards that answered fastest last time first, so
    a fast shard is not charged for waiting behind a slow one.

    Attributes:
        shard: Its position in the batch.
        target: The server, ``host:port``.
        env_indices: The sub-environments it holds.
        session_id: Its session on that server.
        steps: Steps taken since the batch was created.
        last_step_seconds: Latency of the latest step (NaN before the first).
        mean_step_seconds: Mean latency over every step (NaN before the first).
        p99_step_seconds: 99th percentile over the latest :data:`STATS_WINDOW` steps.
    """

    shard: int
    target: str
    env_indices: range
    session_id: str
    steps: int
    last_step_seconds: float
    mean_step_seconds: float
    p99_step_seconds: float


class _Latencies:
    """Per-shard step latencies: a running sum and a window for percentiles."""

    def __init__(self, num_shards: int) -> None:
        self.window = np.full((num_shards, STATS_WINDOW), np.nan)
        self.steps = [0] * num_shards
        self.total = [0.0] * num_shards
        self.last = [math.nan] * num_shards

    def record(self, shard: int, seconds: float) -> None:
        self.window[shard, self.steps[shard] % STATS_WINDOW] = seconds
        self.steps[shard] += 1
        self.total[shard] += seconds
        self.last[shard] = seconds

    def wait_order(self, shards: Sequence[int]) -> list[int]:
        """Fastest first (unmeasured ones first of all): see :class:`ShardStats`."""
        return sorted(shards, key=lambda shard: self.last[shard] if self.steps[shard] else -1.0)


# --- the sharded environment ------------------------------------------------------------------


class ShardedVectorEnv(RemoteVectorEnv):
    """A batch of ``num_envs`` sub-environments spread over several gymrpc servers.

    Shard ``j`` holds the contiguous sub-environments ``start_j..stop_j-1`` in a session
    of its own on ``targets[j]``. Every reset and step is sent to every shard involved
    before any answer is awaited, and the answers are joined into one batch with the
    spaces, dtypes, info dicts and masks a single server gives: a sharded batch is
    bit-identical to the same batch on one server (seeds are ``seed + i`` for
    sub-environment ``i`` wherever it runs; see the module's note on native vector
    implementations that share one random stream), and code written for
    :class:`~gymrpc.vector_env.RemoteVectorEnv`, including the Stable-Baselines3
    adapter, runs on it unchanged. Usually built by :func:`gymrpc.make_vec`.

    Args:
        env_id: Registered id on every server, e.g. ``"gymrpc/Turbofan-v0"``.
        num_envs: Number of sub-environments in the whole batch.
        targets: The servers, ``host:port``, one shard each.
        shard_weights: Relative share of each server; equal shares by default. A server
            whose share rounds to no sub-environment gets no session.
        token: Bearer token, the same on every server; ``GYMRPC_TOKEN`` by default.
        autoreset_mode: ``AutoresetMode`` (or its name/value), NEXT_STEP by default.
        vectorization_mode: As for :class:`~gymrpc.vector_env.RemoteVectorEnv`.
        seed: Seed of the first reset that has none (sub-environment i gets seed + i);
            also seeds ``action_space``.
        env_options: Keyword arguments of the environment, checked by the servers.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        tls: Use TLS with the system's CAs (``GYMRPC_TLS``).
        timeout: Deadline in seconds of every call and step.

    Attributes:
        shards: The :class:`~gymrpc.vector_env.RemoteVectorEnv` of each shard.
        targets: The server of each shard.
        session_ids: The session of each shard. ``session_id`` joins them with commas
            (for logs); ``server_info`` is the first shard's server's (``server_infos``
            has each). There is no single ``session``: see ``shards[j].session``.

    Raises:
        GymrpcError: A shard's server refused its session; the message names it, and
            the sessions already created are closed.
        FailedPreconditionError: If the servers disagree on the environment's spaces or
            modes (different versions of it).

    Faults: an error of one shard raises that error's own class with a message naming
    the shard's server. When some shards ran a step (or reset) and others refused it,
    the batch is out of step and must be reset as a whole before it steps again
    (``ResetNeededError`` until then). A shard whose connection drops re-attaches by
    itself; one that cannot (``ConnectionLostError``) or whose server stops
    (``ShuttingDownError``) ends the whole batch: every shard's session is closed.
    """

    shards: tuple[RemoteVectorEnv, ...]

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        *,
        targets: Sequence[str],
        shard_weights: Sequence[float] | None = None,
        token: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        vectorization_mode: str | None = None,
        seed: int | None = None,
        env_options: dict[str, Any] | None = None,
        root_certificates: str | os.PathLike[str] | None = None,
        tls: bool | None = None,
        timeout: float = 60.0,
        evaluation: bool = False,
    ) -> None:
        # RemoteVectorEnv.__init__ opens one session; a sharded batch opens one per shard.
        if vectorization_mode not in VECTORIZATION_MODES:
            raise ValueError(
                f"vectorization_mode: {vectorization_mode!r}; expected 'vector_entry_point', "
                "'sync' or None"
            )
        check_session_arguments(num_envs, seed)
        if timeout <= 0:
            raise ValueError(f"timeout: {timeout}; expected a positive number of seconds")
        if isinstance(targets, str) or not targets:
            raise ValueError(f"targets: {targets!r}; expected a non-empty list of 'host:port'")
        sizes = shard_sizes(num_envs, len(targets), shard_weights)
        placed = [(target, size) for target, size in zip(targets, sizes, strict=True) if size]
        self._timeout = timeout
        self._pending: str | None = None
        self._sent: list[int] = []
        self._sent_at: list[float] = []
        # Why the shards are out of step (a reset of every one clears it), or None.
        self._torn: str | None = None
        offsets = list(itertools.accumulate((size for _, size in placed), initial=0))
        self._bounds = list(itertools.pairwise(offsets))
        self._starts = np.asarray(offsets[:-1])
        self.targets = tuple(target for target, _ in placed)

        def build(shard: int) -> RemoteVectorEnv:
            start, stop = self._bounds[shard]
            return RemoteVectorEnv(
                env_id,
                stop - start,
                target=self.targets[shard],
                token=token,
                autoreset_mode=autoreset_mode,
                vectorization_mode=vectorization_mode,
                seed=None if seed is None else seed + start,
                env_options=env_options,
                root_certificates=root_certificates,
                tls=tls,
                timeout=timeout,
                evaluation=evaluation,
            )

        built = _in_parallel(build, range(len(placed)))
        self.shards = tuple(item for item in built if isinstance(item, RemoteVectorEnv))
        failures = [
            (shard, item) for shard, item in enumerate(built) if isinstance(item, Exception)
        ]
        if failures:
            _close_all(self.shards, _FAILURE_CLOSE_TIMEOUT)
            shard, error = failures[0]
            raise self._located(shard, error) from error
        try:
            self._adopt_shards(num_envs)
        except BaseException:
            _close_all(self.shards, _FAILURE_CLOSE_TIMEOUT)
            raise
        self._observations: list[Any] = [None] * len(self.shards)
        self._latencies = _Latencies(len(self.shards))
        if seed is not None:
            self.action_space.seed(seed)

    def _adopt_shards(self, num_envs: int) -> None:
        first = self.shards[0]
        for shard, env in enumerate(self.shards[1:], start=1):
            for what in ("single_observation_space", "single_action_space", "autoreset_mode"):
                if getattr(env, what) != getattr(first, what):
                    raise FailedPreconditionError(
                        f"the servers disagree on {first.env_id}: its {what} is "
                        f"{getattr(env, what)} at {self.targets[shard]} and "
                        f"{getattr(first, what)} at {self.targets[0]}; serve the same "
                        "version of the environment on every server"
                    )
        self.env_id = first.env_id
        self.num_envs = num_envs
        self.single_observation_space = first.single_observation_space
        self.single_action_space = first.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = dict(first.metadata)
        self.autoreset_mode = first.autoreset_mode
        self.render_mode = first.render_mode
        self.env_options = dict(first.env_options)
        self.session_ids = tuple(env.session_id for env in self.shards)
        self.session_id = ",".join(self.session_ids)
        self.server_infos = tuple(env.server_info for env in self.shards)
        self.server_info = self.server_infos[0]

    def __repr__(self) -> str:
        shards = ", ".join(
            f"{target} x{stop - start}"
            for target, (start, stop) in zip(self.targets, self._bounds, strict=True)
        )
        return f"ShardedVectorEnv({self.env_id!r}, num_envs={self.num_envs}, shards=[{shards}])"

    # --- reset ---------------------------------------------------------------------------

    def reset_async(
        self,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Send each shard its part of the reset without waiting (see :meth:`reset_wait`).

        Shard ``j``, starting at sub-environment ``o``, gets ``seed + o`` for an int
        seed and its slice of a seed list or of ``options["reset_mask"]``; a shard with
        nothing to reset is not sent anything.

        Raises:
            AlreadyPendingCallError: If a reset or step is already pending.
            ResetNeededError: For a partial reset of a batch never reset as a whole, or
                whose shards are out of step.
        """
        self._ready("reset_async")
        seeds = check_seeds(seed, self.num_envs)
        _check_seed_range(seeds, self.num_envs)
        options = dict(options or {})  # never modify the caller's dict
        mask = None
        if "reset_mask" in options:
            mask = check_reset_mask(options["reset_mask"], self.num_envs)
        targets = list(range(len(self.shards)))
        if mask is not None and not mask.all():
            if self._torn is not None:
                raise ResetNeededError(f"{self._torn}; reset every sub-environment")
            targets = [shard for shard, (a, b) in enumerate(self._bounds) if mask[a:b].any()]
            if any(self._observations[shard] is None for shard in self._skipped(targets)):
                raise ResetNeededError(
                    "reset_mask: the batch must first be reset as a whole (it was just "
                    "created, or a shard failed since)",
                    field="reset_mask",
                )

        def send(shard: int) -> None:
            start, stop = self._bounds[shard]
            shard_options = dict(options)
            if mask is not None:
                shard_options["reset_mask"] = mask[start:stop]
            if isinstance(seeds, int):
                shard_seed: int | list[int | None] | None = seeds + start
            else:
                shard_seed = None if seeds is None else seeds[start:stop]
            self.shards[shard].reset_async(seed=shard_seed, options=shard_options)

        self._send("reset", targets, send)

    def reset_wait(self, timeout: float | None = None) -> tuple[Any, dict[str, Any]]:
        """Wait for every shard's reset and join them.

        Args:
            timeout: Seconds to wait for all shards; the env's timeout by default.

        Returns:
            The observations of the whole batch (shards not reset give their current
            ones) and the vector info of the reset sub-environments.

        Raises:
            NoAsyncCallError: If no reset is pending.
        """
        sent = self._expect("reset", "reset_wait")
        outcomes = self._gather(sent, lambda env, left: env.reset_wait(left), timeout)
        infos: list[Mapping[str, Any]] = [{}] * len(self.shards)
        for shard, outcome in outcomes.items():
            if not isinstance(outcome, Exception):
                self._observations[shard], infos[shard] = outcome
        self._raise_failures(outcomes, "reset")
        if len(sent) == len(self.shards):
            self._torn = None
        return (
            concatenate_batches(self.single_observation_space, self._observations),
            merge_infos(infos, self._bounds, self.num_envs),
        )

    # --- step ----------------------------------------------------------------------------

    def step_async(self, actions: Any) -> None:
        """Send every shard its slice of the actions without waiting for any answer.

        Raises:
            AlreadyPendingCallError: If a reset or step is already pending.
            ResetNeededError: If the shards are out of step after a failure.
            TypeError, ValueError: If the actions are not a batch of the action space
                (checked for the whole batch before anything is sent).
        """
        self._ready("step_async")
        if self._torn is not None:
            raise ResetNeededError(f"{self._torn}; reset() the whole batch before stepping")
        batch = batch_actions(self.single_action_space, actions, self.num_envs)
        space = self.single_action_space

        def send(shard: int) -> None:
            self.shards[shard].step_async(split_batch(space, batch, *self._bounds[shard]))

        self._send("step", range(len(self.shards)), send)

    def step_wait(
        self, timeout: float | None = None
    ) -> tuple[
        Any, npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]
    ]:
        """Wait for every shard's step and join the results.

        Args:
            timeout: Seconds to wait for all shards; the env's timeout by default.

        Raises:
            NoAsyncCallError: If no step is pending.
        """
        sent = self._expect("step", "step_wait")
        outcomes = self._gather(
            self._latencies.wait_order(sent),
            lambda env, left: env.step_wait(left),
            timeout,
            record=True,
        )
        for shard, outcome in outcomes.items():
            if not isinstance(outcome, Exception):
                self._observations[shard] = outcome[0]
        self._raise_failures(outcomes, "step")
        results = [cast(_StepResult, outcome) for outcome in outcomes.values()]
        return (
            concatenate_batches(self.single_observation_space, [r[0] for r in results]),
            np.concatenate([r[1] for r in results]),
            np.concatenate([r[2] for r in results]),
            np.concatenate([r[3] for r in results]),
            merge_infos([r[4] for r in results], self._bounds, self.num_envs),
        )

    # --- fan-out machinery ---------------------------------------------------------------

    def _ready(self, name: str) -> None:
        if self.closed:
            raise ClosedEnvironmentError(
                f"Trying to operate on `{type(self).__name__}`, after a call to `close()`."
            )
        if self._pending is not None:
            raise AlreadyPendingCallError(
                f"Calling `{name}` while waiting for a pending call to `{self._pending}` "
                "to complete",
                self._pending,
            )

    def _expect(self, kind: str, name: str) -> list[int]:
        if self.closed:
            raise ClosedEnvironmentError(
                f"Trying to operate on `{type(self).__name__}`, after a call to `close()`."
            )
        if self._pending != kind:
            raise NoAsyncCallError(
                f"Calling `{name}` without any prior call to `{kind}_async`.", kind
            )
        self._pending = None
        return self._sent

    def _skipped(self, targets: Sequence[int]) -> list[int]:
        return [shard for shard in range(len(self.shards)) if shard not in targets]

    def _send(self, kind: str, targets: Sequence[int], send: Callable[[int], None]) -> None:
        """Send a request to every target shard; none is awaited here."""
        sent_at = [math.nan] * len(self.shards)
        sent: list[int] = []
        try:
            for shard in targets:
                send(shard)
                sent_at[shard] = time.perf_counter()
                sent.append(shard)
        except BaseException:
            # Whatever stopped the sending (it is the caller's error, checked alike by
            # every shard, so normally nothing was sent yet): answers already requested
            # are awaited, and the shards that ran are out of step with the others.
            outcomes = self._gather(sent, _wait_for(kind), None)
            if any(not isinstance(outcome, Exception) for outcome in outcomes.values()):
                self._torn = f"a {kind} ran on only some shards"
                for shard in outcomes:
                    self._observations[shard] = None
            raise
        self._pending, self._sent, self._sent_at = kind, sent, sent_at

    def _gather(
        self,
        order: Sequence[int],
        wait: Callable[[RemoteVectorEnv, float], _T],
        timeout: float | None,
        *,
        record: bool = False,
    ) -> dict[int, _T | Exception]:
        """Wait for each shard in ``order``; a failure does not stop waiting for the others.

        Args:
            order: The shards to wait for, in the order to wait.
            wait: Waits for one shard, with the seconds left.
            timeout: Seconds for all of them; the env's timeout by default.
            record: Record each shard's step latency.

        Returns:
            Each shard's result or exception, in shard order.
        """
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        outcomes: dict[int, _T | Exception] = {}
        for shard in order:
            # A shard that already answered is read even when the deadline has passed.
            left = max(deadline - time.monotonic(), 1e-3)
            try:
                outcomes[shard] = wait(self.shards[shard], left)
            except Exception as error:
                outcomes[shard] = error
            except BaseException:
                # KeyboardInterrupt: the other answers are left unread, so the shards'
                # streams no longer line up with the batch.
                self._torn = "a wait for the shards was interrupted"
                raise
            if record:
                self._latencies.record(shard, time.perf_counter() - self._sent_at[shard])
        return dict(sorted(outcomes.items()))

    def _raise_failures(self, outcomes: Mapping[int, object], kind: str) -> None:
        failures = [
            (shard, outcome)
            for shard, outcome in outcomes.items()
            if isinstance(outcome, Exception)
        ]
        if not failures:
            return
        for shard, _ in failures:
            self._observations[shard] = None  # its state is the server's to say now
        fatal = [(shard, error) for shard, error in failures if isinstance(error, _FATAL)]
        if fatal:
            shard, lost = fatal[0]
            self.close(timeout=_FAILURE_CLOSE_TIMEOUT)
            raise self._located(shard, lost, "the batch is closed") from lost
        if len(failures) < len(outcomes):
            names = ", ".join(self.targets[shard] for shard, _ in failures)
            self._torn = f"the last {kind} failed at {names} but ran on the other shards"
        shard, error = failures[0]
        raise self._located(shard, error) from error

    def _located(self, shard: int, error: Exception, aftermath: str = "") -> Exception:
        """``error`` of shard ``shard``, saying where it happened in its message.

        A gymrpc error keeps its class (``except InvalidActionError`` still works); an
        action path's sub-environment index and the ``env_indices`` metadata are made
        global, and the message says how the shard counts.
        """
        target = self.targets[shard]
        start, stop = self._bounds[shard] if self._bounds else (0, 0)
        where = (
            f"shard {shard} of {len(self._bounds)} at {target} (sub-environments "
            f"{start}..{stop - 1}; its index i is sub-environment {start} + i)"
        )
        if not isinstance(error, GymrpcError):
            error.add_note(where)
            return error
        field = error.field
        if field is not None and "actions" in field and (match := _TRAILING_INDEX.search(field)):
            field = f"{field[: match.start()]}[{int(match.group(1)) + start}]"
        metadata = {**error.metadata, "target": target, "shard": str(shard)}
        if metadata.get("env_indices"):
            metadata["env_indices"] = ",".join(
                str(int(index) + start) for index in metadata["env_indices"].split(",")
            )
        suffix = f" ({aftermath})" if aftermath else ""
        return type(error)(
            f"{where}: {error.message}{suffix}",
            reason=error.reason,
            field=field,
            metadata=metadata,
            status=error.status,
        )

    # --- sub-environment access ----------------------------------------------------------

    def _groups(
        self, env_indices: Sequence[int] | None
    ) -> list[tuple[int, list[int] | None, list[int]]]:
        """``(shard, its local indices or None for all, positions in the answer)``."""
        if env_indices is None or len(env_indices) == 0:
            # As RemoteVectorEnv (and the protocol): no indices means every one.
            return [
                (shard, None, list(range(start, stop)))
                for shard, (start, stop) in enumerate(self._bounds)
            ]
        indices = np.asarray(env_indices)
        valid = indices.dtype.kind in "iu" and indices.ndim == 1
        bad = [] if not valid else [i for i in indices.tolist() if not 0 <= i < self.num_envs]
        if not valid or bad:
            raise InvalidArgumentError(
                f"env_indices: {bad or list(env_indices)} are not sub-environments of a "
                f"batch of {self.num_envs}; expected indices in 0..{self.num_envs - 1}",
                field="env_indices",
            )
        owners = np.searchsorted(self._starts, indices, side="right") - 1
        groups = []
        for shard in dict.fromkeys(owners.tolist()):
            positions = np.flatnonzero(owners == shard)
            local = (indices[positions] - self._starts[shard]).tolist()
            groups.append((shard, local, positions.tolist()))
        return groups

    def _fan_out(
        self,
        groups: Sequence[tuple[int, list[int] | None, list[int]]],
        call: Callable[[RemoteVectorEnv, list[int] | None, list[int]], _T],
    ) -> list[_T]:
        """Run a unary call on each shard at once; raise the first failure, located."""
        outcomes = _in_parallel(
            lambda group: call(self.shards[group[0]], group[1], group[2]), groups
        )
        for (shard, _, _), outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, Exception):
                raise self._located(shard, outcome) from outcome
        return cast(list[_T], outcomes)

    def call_at(
        self, env_indices: Sequence[int] | None, name: str, /, *args: Any, **kwargs: Any
    ) -> tuple[Any, ...]:
        """Call a method of the given sub-environments (all when ``None``), on every shard.

        Returns:
            One result per selected sub-environment, in the order given.
        """
        self._ready("call_at")
        groups = self._groups(env_indices)
        results = self._fan_out(
            groups, lambda env, local, _: env.call_at(local, name, *args, **kwargs)
        )
        return _scatter(groups, results)

    def get_attr(self, name: str, env_indices: Sequence[int] | None = None) -> tuple[Any, ...]:
        """Read an attribute of every sub-environment (or of ``env_indices``), on every shard.

        Raises:
            UnknownAttributeError: (an ``AttributeError``) if there is no such attribute.
        """
        self._ready("get_attr")
        groups = self._groups(env_indices)
        results = self._fan_out(groups, lambda env, local, _: env.get_attr(name, local))
        return _scatter(groups, results)

    def set_attr(
        self,
        name: str,
        values: list[Any] | tuple[Any, ...] | Any,
        env_indices: Sequence[int] | None = None,
    ) -> None:
        """Set an attribute of every sub-environment (or of ``env_indices``), on every shard.

        Args:
            name: The attribute.
            values: One value per selected sub-environment (a list or tuple), or a
                single value for all.
            env_indices: The sub-environments to change; all by default.

        Raises:
            ValueError: If a list or tuple does not have one item per sub-environment.
        """
        self._ready("set_attr")
        groups = self._groups(env_indices)
        if isinstance(values, list | tuple):
            count = sum(len(positions) for _, _, positions in groups)
            if len(values) != count:
                raise ValueError(
                    "Values must be a list or tuple with length equal to the number of "
                    f"environments. Got `{len(values)}` values for {count} environments."
                )
            items = list(values)
            self._fan_out(
                groups,
                lambda env, local, positions: env.set_attr(
                    name, [items[p] for p in positions], local
                ),
            )
        else:
            self._fan_out(groups, lambda env, local, _: env.set_attr(name, values, local))

    def render(self, env_indices: Sequence[int] | None = None) -> Any:
        """Return the frames the shards render, in the order of ``env_indices``.

        Args:
            env_indices: Render only these sub-environments; all by default.

        Returns:
            A tuple with one frame (or one list of frames) per rendered sub-environment,
            or None when the sessions have no render mode.
        """
        self._ready("render")
        groups = self._groups(env_indices)
        frames = self._fan_out(groups, lambda env, local, _: env.render(local))
        if all(part is None for part in frames):
            return None
        return _scatter(groups, frames)

    # --- statistics and closing ----------------------------------------------------------

    @property
    def evaluation(self) -> bool:
        """True for evaluation sessions (every shard's session is one, or none is)."""
        return all(shard.evaluation for shard in self.shards)

    @evaluation.setter
    def evaluation(self, value: bool) -> None:
        # RemoteVectorEnv sets the attribute when it adopts a session; the shards hold it.
        pass

    @property
    def np_random_seed(self) -> Any:
        """The servers' seeds, as one batch would report them.

        Under sync vectorization every shard reports one seed per sub-environment, and
        the tuples join into one (sub-environment order). A native vector environment
        has one seed per server: then a tuple with each shard's. Each shard's comes
        from its last reset or, before the first, from its server
        (:attr:`RemoteVectorEnv.np_random_seed`). ``None`` in evaluation sessions.
        """
        seeds = [shard.np_random_seed for shard in self.shards]
        if any(seed is None for seed in seeds):
            return None
        if all(isinstance(seed, tuple) for seed in seeds):
            return tuple(item for seed in seeds for item in seed)
        return tuple(seeds)

    def shard_stats(self) -> list[ShardStats]:
        """Step latency of every shard, to find the server that slows the batch down.

        Returns:
            One :class:`ShardStats` per shard, in shard order.
        """
        latencies = self._latencies
        stats = []
        for shard, (start, stop) in enumerate(self._bounds):
            steps = latencies.steps[shard]
            window = latencies.window[shard, : min(steps, STATS_WINDOW)]
            stats.append(
                ShardStats(
                    shard=shard,
                    target=self.targets[shard],
                    env_indices=range(start, stop),
                    session_id=self.session_ids[shard],
                    steps=steps,
                    last_step_seconds=latencies.last[shard],
                    mean_step_seconds=latencies.total[shard] / steps if steps else math.nan,
                    p99_step_seconds=float(np.percentile(window, 99)) if steps else math.nan,
                )
            )
        return stats

    def close_extras(self, timeout: float = 5.0, **kwargs: Any) -> None:
        """Close every shard's stream, session and channel, all at once; never hangs.

        Args:
            timeout: Deadline of each shard's CloseSession call.
            **kwargs: Ignored (VectorEnv.close passes its keyword arguments on).
        """
        _close_all(getattr(self, "shards", ()), timeout)

    def __enter__(self) -> ShardedVectorEnv:
        """Use the environment in a ``with`` block; it is closed at the end."""
        return self

    def __del__(self) -> None:
        # As RemoteVectorEnv: free the servers' sessions if close() was forgotten; the
        # shards are closed at interpreter exit by vector_env's atexit hook instead.
        if sys.is_finalizing() or getattr(self, "closed", True) or not getattr(self, "shards", ()):
            return
        with contextlib.suppress(Exception):
            self.close(timeout=1.0)


def _check_seed_range(seeds: int | list[int | None] | None, num_envs: int) -> None:
    """Refuse the seeds a single server refuses, before any shard has reset.

    Raises:
        InvalidSeedError: If ``seed + num_envs - 1`` does not fit in 64 bits (the
            server's check, made here because only the last shard would fail it).
        OverflowError: If a seed of a list does not fit in 64 bits (as RemoteVectorEnv).
    """
    if isinstance(seeds, int) and seeds + num_envs - 1 > _MAX_SEED:
        raise InvalidSeedError(
            f"reset.seed: {seeds} + {num_envs - 1} does not fit in 64 bits; expected "
            f"seed <= {_MAX_SEED + 1 - num_envs}",
            field="reset.seed",
        )
    if isinstance(seeds, list):
        np.array([seed or 0 for seed in seeds], dtype=np.uint64)


def _wait_for(kind: str) -> Callable[[RemoteVectorEnv, float], object]:
    if kind == "step":
        return lambda env, left: env.step_wait(left)
    return lambda env, left: env.reset_wait(left)


def _scatter(
    groups: Sequence[tuple[int, list[int] | None, list[int]]], results: Sequence[Sequence[Any]]
) -> tuple[Any, ...]:
    """Put each shard's answers back at their positions in the caller's order."""
    answer: list[Any] = [None] * sum(len(positions) for _, _, positions in groups)
    for (_, _, positions), values in zip(groups, results, strict=True):
        for position, value in zip(positions, values, strict=True):
            answer[position] = value
    return tuple(answer)


_Item = TypeVar("_Item")


def _in_parallel(function: Callable[[_Item], _T], items: Iterable[_Item]) -> list[_T | Exception]:
    """``function`` of every item in threads (gRPC calls release the GIL while waiting).

    Returns:
        Each item's result or the exception it raised, in order. Anything but an
        ``Exception`` (KeyboardInterrupt) is raised, not returned.
    """
    work = list(items)
    if len(work) == 1:
        try:
            return [function(work[0])]
        except Exception as error:
            return [error]
    with futures.ThreadPoolExecutor(len(work), thread_name_prefix="gymrpc-shard") as pool:
        submitted = [pool.submit(function, item) for item in work]
        outcomes: list[_T | Exception] = []
        for future in submitted:
            failure = future.exception()
            if failure is None:
                outcomes.append(future.result())
            elif isinstance(failure, Exception):
                outcomes.append(failure)
            else:
                raise failure
        return outcomes


def _close_all(shards: Sequence[RemoteVectorEnv], timeout: float) -> None:
    """Close every shard at once, so a dead server delays closing by ``timeout`` at most."""
    _in_parallel(lambda env: env.close(timeout=timeout), shards)
