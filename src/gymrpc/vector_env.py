"""``RemoteVectorEnv``: a ``gymnasium.vector.VectorEnv`` whose batch runs on a gymrpc server.

Reset and step travel over one bidirectional stream per session; everything else
(handshake, session life cycle, attributes, rendering) is unary. It behaves exactly
like ``SyncVectorEnv`` over the same environment: same spaces, autoreset modes, info
dicts, seeding rules and errors.

Example:
    >>> import gymrpc
    >>> envs = gymrpc.make_vec("gymrpc/Turbofan-v0", num_envs=64)  # doctest: +SKIP
    >>> observations, info = envs.reset(seed=0)  # doctest: +SKIP
    >>> observations.shape  # doctest: +SKIP
    (64, 10, 9)
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import logging
import os
import sys
import time
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gymrpc.allocator import tune_allocator
from gymrpc.batching import batch_actions, check_reset_mask, check_seeds
from gymrpc.connection import Connection, ConnectionSettings
from gymrpc.errors import (
    GymrpcError,
    InvalidNumEnvsError,
    InvalidSeedError,
    ResourceExhaustedError,
    from_status,
)
from gymrpc.modes import (
    VECTORIZATION_MODES,
    autoreset_from_proto,
    autoreset_to_proto,
    vectorization_to_proto,
)
from gymrpc.spaces import decode_space
from gymrpc.stream import SessionStream
from gymrpc.tensors import decode_tensor, fill_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import decode_map, decode_value, fill_value

__all__ = ["RemoteVectorEnv", "make_vec"]

logger = logging.getLogger(__name__)

# The largest values the wire's fields hold (uint32 num_envs, uint64 seed).
_MAX_NUM_ENVS = (1 << 32) - 1
_MAX_SEED = (1 << 64) - 1


def check_session_arguments(num_envs: Any, seed: Any) -> None:
    """Check ``make_vec``'s batch size and seed before anything is sent.

    The errors are the server's own (a ``ValueError`` subclass naming the field),
    raised before protobuf can refuse the value with a bare "Value out of range".

    Raises:
        InvalidNumEnvsError: If ``num_envs`` is not an int of at least 1.
        InvalidSeedError: If ``seed`` is not ``None`` or an int in [0, 2**64 - 1].
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer):
        raise InvalidNumEnvsError(
            f"num_envs: got {type(num_envs).__name__} {num_envs!r}; expected an int >= 1",
            field="num_envs",
        )
    if not 1 <= num_envs <= _MAX_NUM_ENVS:
        raise InvalidNumEnvsError(
            f"num_envs: {num_envs}; expected at least 1 (and at most the server's "
            "limit, GetServerInfo's limits.max_num_envs)",
            field="num_envs",
        )
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidSeedError(
            f"seed: got {type(seed).__name__} {seed!r}; expected None or an int >= 0",
            field="seed",
        )
    if not 0 <= seed <= _MAX_SEED - (num_envs - 1):
        raise InvalidSeedError(
            f"seed: {seed}; expected an int in [0, {_MAX_SEED - (num_envs - 1)}] "
            "(sub-environment i is seeded with seed + i, which must fit in 64 bits)",
            field="seed",
        )


# Environments not closed yet: closed at interpreter exit, while gRPC still runs.
_OPEN: weakref.WeakSet[RemoteVectorEnv] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for env in list(_OPEN):
        with contextlib.suppress(Exception):
            env.close(timeout=1.0)


class _State(enum.Enum):
    DEFAULT = "default"
    WAITING_RESET = "reset"
    WAITING_STEP = "step"


class RemoteVectorEnv(VectorEnv[Any, Any, Any]):
    """A batch of ``num_envs`` environments served by a gymrpc server.

    Args:
        env_id: Registered id on the server, e.g. ``"gymrpc/Turbofan-v0"``.
        num_envs: Number of sub-environments.
        target: Server ``host:port``; ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        token: Bearer token; ``GYMRPC_TOKEN`` by default.
        autoreset_mode: ``AutoresetMode`` (or its name/value), NEXT_STEP by default.
        vectorization_mode: ``"vector_entry_point"`` (the environment's native vector
            implementation), ``"sync"`` (SyncVectorEnv on the server: identical to
            running SyncVectorEnv locally) or ``None`` to let the server choose.
        seed: Seed of the first reset that has none (sub-environment i gets seed + i);
            also seeds ``action_space`` so that ``sample()`` is reproducible.
        env_options: Keyword arguments of the environment, checked by the server.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        tls: Use TLS with the system's CAs (``GYMRPC_TLS``).
        timeout: Deadline in seconds of every call and step.
        session_id: Attach to an existing session of yours instead of creating one
            (``env_id``, ``num_envs`` and the options are then the session's).
        connection: An open connection to use instead of opening one (``target``,
            ``token``, the TLS settings and ``timeout`` then come from it); the env owns
            it from then on. ``make_vec`` passes the one it asked for the server's workers.
        evaluation: Create an evaluation session of the challenge: its episodes are
            scored, run on the server's secret engines, and take no seed (see
            ``CreateSessionRequest.evaluation`` in proto/gymrpc/v1/env_service.proto).

    Raises:
        ProtocolVersionError: If the server speaks another major protocol version.
        UnavailableError: If the server cannot be reached.
        GymrpcError: Any refusal of the session (unknown environment, bad options,
            limits, permissions), with the server's message.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        *,
        target: str | None = None,
        token: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        vectorization_mode: str | None = None,
        seed: int | None = None,
        env_options: dict[str, Any] | None = None,
        root_certificates: str | os.PathLike[str] | None = None,
        tls: bool | None = None,
        timeout: float = 60.0,
        session_id: str | None = None,
        connection: Connection | None = None,
        evaluation: bool = False,
    ) -> None:
        if vectorization_mode not in VECTORIZATION_MODES:
            raise ValueError(
                f"vectorization_mode: {vectorization_mode!r}; expected 'vector_entry_point', "
                "'sync' or None"
            )
        if session_id is None:
            check_session_arguments(num_envs, seed)
        tune_allocator()  # large observations: see gymrpc.allocator
        self._connection = connection or Connection(
            ConnectionSettings.resolve(target, token, root_certificates, tls, timeout)
        )
        self._stream: SessionStream | None = None
        self._state = _State.DEFAULT
        self._np_random_seed: Any = None
        # Whether np_random_seed was asked of the server since the last reset.
        self._np_random_seed_asked = False
        self.session_id = ""
        try:
            self.server_info = self._connection.handshake()
            if session_id is None:
                request = pb.CreateSessionRequest(
                    env_id=env_id,
                    num_envs=num_envs,
                    autoreset_mode=autoreset_to_proto(autoreset_mode),
                    vectorization_mode=vectorization_to_proto(vectorization_mode),
                    evaluation=evaluation,
                )
                if seed is not None:
                    request.seed = seed
                for name, value in (env_options or {}).items():
                    fill_value(request.env_options[name], value, field=f"env_options.{name}")
                session = self._connection.call(
                    self._connection.stub.CreateSession, request
                ).session
            else:
                session = self._connection.call(
                    self._connection.stub.GetSession, pb.GetSessionRequest(session_id=session_id)
                ).session
        except BaseException:
            self._connection.close()
            raise
        self._adopt(session)
        _OPEN.add(self)
        if seed is not None:
            self.action_space.seed(seed)

    def _adopt(self, session: pb.Session) -> None:
        self.session = session
        self.session_id = session.session_id
        self.env_id = session.env_id
        self.num_envs = session.num_envs
        # The spaces come with their generators' states (Space.generator) and
        # batch_space copies them, as SyncVectorEnv batches its first environment's.
        self.single_observation_space = decode_space(
            session.single_observation_space, field="single_observation_space"
        )
        self.single_action_space = decode_space(
            session.single_action_space, field="single_action_space"
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        if session.HasField("np_random_seed"):  # attached with GetSession
            self._np_random_seed = decode_value(session.np_random_seed, field="np_random_seed")
        self.metadata = decode_map(session.metadata)
        self.metadata["autoreset_mode"] = autoreset_from_proto(session.autoreset_mode)
        self.autoreset_mode = self.metadata["autoreset_mode"]
        #: True for an evaluation session of the challenge.
        self.evaluation = session.evaluation
        self.render_mode = session.render_mode or None
        self.env_options = {
            name: decode_value(value, field=f"env_options.{name}")
            for name, value in session.env_options.items()
        }
        self._stream = SessionStream(self._connection, session.session_id, session.last_sequence)

    # --- reset ---------------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset all sub-environments, or those in ``options["reset_mask"]``.

        Args:
            seed: ``None``, an int (sub-environment i gets ``seed + i``) or a list of
                one ``int | None`` per sub-environment.
            options: Passed to every sub-environment's reset; ``reset_mask`` selects
                which ones reset. The dict is not modified.

        Returns:
            The batched observations and the vector info of the reset sub-environments.
        """
        self.reset_async(seed=seed, options=options)
        return self.reset_wait()

    def reset_async(
        self,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Send a reset without waiting for its result (see :meth:`reset_wait`).

        Raises:
            AlreadyPendingCallError: If a reset or step is already pending.
        """
        stream = self._running_stream()
        if self._state is not _State.DEFAULT:
            raise AlreadyPendingCallError(
                f"Calling `reset_async` while waiting for a pending call to `{self._state.value}` "
                "to complete",
                self._state.value,
            )
        seeds = check_seeds(seed, self.num_envs)
        options = dict(options or {})  # never modify the caller's dict
        has_mask = "reset_mask" in options
        mask = options.pop("reset_mask", None)
        request = stream.new_request()
        reset = request.reset
        reset.session_id = self.session_id
        if has_mask:
            fill_tensor(reset.reset_mask, check_reset_mask(mask, self.num_envs))
        if isinstance(seeds, int):
            reset.seed = seeds
        elif seeds is not None:
            present = np.array([s is not None for s in seeds], dtype=np.bool_)
            values = np.array([s or 0 for s in seeds], dtype=np.uint64)
            fill_tensor(reset.seeds.values, values)
            if not present.all():
                fill_tensor(reset.seeds.present, present)
        for name, value in options.items():
            fill_value(reset.options[name], value, field=f"options.{name}")
        stream.send(request)
        self._state = _State.WAITING_RESET

    def reset_wait(self, timeout: float | None = None) -> tuple[Any, dict[str, Any]]:
        """Wait for the result of :meth:`reset_async`.

        Args:
            timeout: Seconds to wait; the env's timeout by default.

        Raises:
            NoAsyncCallError: If no reset is pending.
        """
        response = self._wait(_State.WAITING_RESET, "reset_wait", timeout)
        if response.reset.HasField("np_random_seed"):
            self._np_random_seed = decode_value(response.reset.np_random_seed)
            self._np_random_seed_asked = False
        return decode_value(response.reset.observations), decode_map(response.reset.info)

    @property
    def np_random_seed(self) -> Any:
        """The server's ``np_random_seed``, as ``SyncVectorEnv`` gives it.

        Under ``vectorization_mode="sync"`` a tuple with each sub-environment's seed
        (``(42, 43)`` after ``reset(seed=42)`` on 2 envs); for a native vector
        environment its own seed. Every reset reports it; until the first one it is
        asked of the server (GetSession), which reads it as ``SyncVectorEnv`` does: the
        seeds of environments seeded when built, and fresh entropy seeds for those not
        seeded yet. Always ``None`` in an evaluation session, whose seeds are secret
        (and from a server that does not report it).
        """
        if self._np_random_seed is None and not self._np_random_seed_asked:
            self._np_random_seed = self._ask_np_random_seed()
        return self._np_random_seed

    def _ask_np_random_seed(self) -> Any:
        # Asked once: a server that left it out of one GetSession (an evaluation
        # session, or a server before this field) leaves it out of the next.
        self._np_random_seed_asked = True
        if self.evaluation or self.closed or not self.session_id:
            return None
        session = self._connection.call(
            self._connection.stub.GetSession, pb.GetSessionRequest(session_id=self.session_id)
        ).session
        if not session.HasField("np_random_seed"):
            return None
        return decode_value(session.np_random_seed, field="np_random_seed")

    @property
    def np_random(self) -> Any:
        """Random generators seeded like the server's, as they were right after seeding.

        The server's own generators live on the server and move on as the environments
        draw from them; these are fresh ones from :attr:`np_random_seed` (one per
        sub-environment under sync vectorization, as ``SyncVectorEnv.np_random`` is),
        equal to the server's only until they draw.

        Raises:
            AttributeError: In an evaluation session (or with a server that does not
                report its seeds).
        """
        seed = self.np_random_seed
        if seed is None:
            raise AttributeError(
                "np_random: the server reports no seeds (an evaluation session, whose "
                "seeds are secret, or a server that does not report them)"
            )
        if isinstance(seed, tuple):
            return tuple(seeding.np_random(item)[0] for item in seed)
        return seeding.np_random(seed)[0]

    @np_random.setter
    def np_random(self, value: Any) -> None:
        raise AttributeError(
            "np_random: the environments' generators live on the server and cannot be "
            "replaced from here; reset with a seed instead"
        )

    # --- step ----------------------------------------------------------------------------

    def step(
        self, actions: Any
    ) -> tuple[
        Any, npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]
    ]:
        """Step every sub-environment once.

        Args:
            actions: One action per sub-environment (an array, a list, or dicts/tuples
                of them for Dict/Tuple action spaces).

        Returns:
            Observations, rewards (float64), terminations, truncations and info.
        """
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        """Send a step without waiting for its result, to overlap it with other work.

        Raises:
            AlreadyPendingCallError: If a reset or step is already pending.
            TypeError, ValueError: If the actions are not a batch of the action space.
        """
        stream = self._running_stream()
        if self._state is not _State.DEFAULT:
            raise AlreadyPendingCallError(
                f"Calling `step_async` while waiting for a pending call to `{self._state.value}` "
                "to complete.",
                self._state.value,
            )
        batch = batch_actions(self.single_action_space, actions, self.num_envs)
        request = stream.new_request()
        request.step.session_id = self.session_id
        fill_value(request.step.actions, batch, field="actions")
        stream.send(request)
        self._state = _State.WAITING_STEP

    def step_wait(
        self, timeout: float | None = None
    ) -> tuple[
        Any, npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]
    ]:
        """Wait for the result of :meth:`step_async`.

        Args:
            timeout: Seconds to wait; the env's timeout by default.

        Raises:
            NoAsyncCallError: If no step is pending.
        """
        result = self._wait(_State.WAITING_STEP, "step_wait", timeout).step
        return (
            decode_value(result.observations, field="observations"),
            decode_tensor(result.rewards, field="rewards"),
            decode_tensor(result.terminations, field="terminations"),
            decode_tensor(result.truncations, field="truncations"),
            decode_map(result.info) if result.info.entries else {},
        )

    def _wait(self, expected: _State, name: str, timeout: float | None) -> pb.StreamSessionResponse:
        stream = self._running_stream()
        if self._state is not expected:
            raise NoAsyncCallError(
                f"Calling `{name}` without any prior call to `{expected.value}_async`.",
                expected.value,
            )
        try:
            response = stream.receive(timeout)
        finally:
            self._state = _State.DEFAULT
        if response.HasField("error"):
            raise from_status(response.error)
        return response

    def _running_stream(self) -> SessionStream:
        if self.closed or self._stream is None:
            raise ClosedEnvironmentError(
                f"Trying to operate on `{type(self).__name__}`, after a call to `close()`."
            )
        return self._stream

    # --- sub-environment access -----------------------------------------------------------

    def _unary_ready(self) -> None:
        self._running_stream()
        if self._state is not _State.DEFAULT:
            raise AlreadyPendingCallError(
                f"Calling a method while waiting for a pending call to `{self._state.value}`",
                self._state.value,
            )

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call a method of every sub-environment on the server.

        ``name`` is positional-only so that the method may itself take a ``name``
        keyword argument.

        Returns:
            One result per sub-environment.
        """
        return self.call_at(None, name, *args, **kwargs)

    def call_at(
        self, env_indices: Sequence[int] | None, name: str, /, *args: Any, **kwargs: Any
    ) -> tuple[Any, ...]:
        """Call a method of the given sub-environments (all when ``None``).

        Returns:
            One result per selected sub-environment, in the order given.
        """
        self._unary_ready()
        request = pb.CallRequest(session_id=self.session_id, name=name)
        request.env_indices.extend(env_indices or ())
        for index, arg in enumerate(args):
            fill_value(request.args.add(), arg, field=f"args[{index}]")
        for key, value in kwargs.items():
            fill_value(request.kwargs[key], value, field=f"kwargs.{key}")
        response = self._connection.call(self._connection.stub.Call, request)
        return tuple(decode_value(result) for result in response.results)

    def get_attr(self, name: str, env_indices: Sequence[int] | None = None) -> tuple[Any, ...]:
        """Read an attribute of every sub-environment (or of ``env_indices``) on the server.

        Raises:
            UnknownAttributeError: (an ``AttributeError``) if there is no such attribute.
        """
        self._unary_ready()
        request = pb.GetAttrRequest(session_id=self.session_id, name=name)
        request.env_indices.extend(env_indices or ())
        response = self._connection.call(self._connection.stub.GetAttr, request)
        return tuple(decode_value(value) for value in response.values)

    def set_attr(
        self,
        name: str,
        values: list[Any] | tuple[Any, ...] | Any,
        env_indices: Sequence[int] | None = None,
    ) -> None:
        """Set an attribute of every sub-environment (or of ``env_indices``) on the server.

        Args:
            name: The attribute.
            values: One value per selected sub-environment (a list or tuple), or a
                single value for all.
            env_indices: The sub-environments to change; all by default.

        Raises:
            ValueError: If a list or tuple does not have one item per sub-environment.
        """
        self._unary_ready()
        count = self.num_envs if env_indices is None else len(env_indices)
        if isinstance(values, list | tuple):
            if len(values) != count:
                raise ValueError(
                    "Values must be a list or tuple with length equal to the number of "
                    f"environments. Got `{len(values)}` values for {count} environments."
                )
            items = list(values)
        else:
            items = [values]
        request = pb.SetAttrRequest(session_id=self.session_id, name=name)
        request.env_indices.extend(env_indices or ())
        for index, value in enumerate(items):
            fill_value(request.values.add(), value, field=f"values[{index}]")
        self._connection.call(self._connection.stub.SetAttr, request)

    def render(self, env_indices: Sequence[int] | None = None) -> Any:
        """Return the frames the server renders (``render_mode`` set at creation).

        Args:
            env_indices: Render only these sub-environments (frames are large: a batch
                of them may exceed the message limit); all by default, as
                ``SyncVectorEnv.render()``.

        Returns:
            A tuple with one frame (or, for ``_list`` modes, one list of frames) per
            rendered sub-environment.
        """
        self._unary_ready()
        request = pb.RenderRequest(session_id=self.session_id)
        request.env_indices.extend(env_indices or ())
        return decode_value(self._connection.call(self._connection.stub.Render, request).frames)

    # --- closing -------------------------------------------------------------------------

    def close_extras(self, timeout: float = 5.0, **kwargs: Any) -> None:
        """Close the stream, the session and the channel; never hangs.

        Args:
            timeout: Deadline of the CloseSession call. If the server is gone the
                session cannot be closed, and the server frees it after its idle
                timeout anyway.
            **kwargs: Ignored (VectorEnv.close passes its keyword arguments on).
        """
        if self._stream is not None:
            self._stream.close()
        if self.session_id:
            self._close_session(min(self._connection.settings.timeout, timeout))
        self._connection.close()

    def _close_session(self, timeout: float) -> None:
        """Send CloseSession, retrying while the server is at its concurrency limit.

        The stream just cancelled still holds one of the server's call slots for a
        moment; a server at ``max_concurrent_rpcs`` refuses the close meanwhile, and
        giving up would leave the session counting against the user until it idles out.
        """
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            try:
                self._connection.call(
                    self._connection.stub.CloseSession,
                    pb.CloseSessionRequest(session_id=self.session_id),
                    timeout=max(deadline - time.monotonic(), 0.01),
                )
                return
            except ResourceExhaustedError as error:
                if time.monotonic() + pause >= deadline:
                    logger.info("could not close session %s: %s", self.session_id[:8], error)
                    return
            except GymrpcError as error:
                logger.info("could not close session %s: %s", self.session_id[:8], error)
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def __enter__(self) -> RemoteVectorEnv:
        """Use the environment in a ``with`` block; it is closed at the end."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Scripts that forget close() still free the server's session; never raise here.
        # During interpreter shutdown gRPC's threads are frozen and closing a channel
        # would wait for them forever: _close_at_exit has closed everything by then.
        if sys.is_finalizing():
            return
        if not getattr(self, "closed", True) and getattr(self, "_connection", None) is not None:
            # Nothing can be reported from a finalizer.
            with contextlib.suppress(Exception):
                self.close(timeout=1.0)


def make_vec(
    env_id: str,
    num_envs: int = 1,
    *,
    target: str | Sequence[str] | None = None,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    token: str | None = None,
    seed: int | None = None,
    vectorization_mode: str | None = None,
    timeout: float = 60.0,
    root_certificates: str | os.PathLike[str] | None = None,
    tls: bool | None = None,
    shard_weights: Sequence[float] | None = None,
    discover_workers: bool = True,
    evaluation: bool = False,
    **env_options: Any,
) -> RemoteVectorEnv:
    """Create a remote vector environment, like ``gymnasium.make_vec`` but on servers.

    With one server the batch is one session there. With several (a list of targets,
    targets separated by commas, a ``dns:///name:port`` name with several addresses,
    or one server started with ``gymrpc-server --workers N``, which lists its worker
    processes), the batch is split into contiguous shards, one session per server,
    and behaves exactly as the same batch on one server: see
    :class:`gymrpc.sharding.ShardedVectorEnv`.

    Args:
        env_id: Registered id on the server, e.g. ``"gymrpc/Turbofan-v0"``.
        num_envs: Number of sub-environments (of the whole batch).
        target: Server ``host:port``, several separated by commas or as a list, or
            ``dns:///name:port`` (every address the name resolves to is a server);
            ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        autoreset_mode: NEXT_STEP (default), SAME_STEP or DISABLED.
        token: Bearer token; ``GYMRPC_TOKEN`` by default.
        seed: Seed of the first reset without one (sub-environment i gets seed + i).
        vectorization_mode: ``"vector_entry_point"``, ``"sync"`` or ``None``.
        timeout: Deadline in seconds of every call and step.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        tls: Use TLS with the system's CAs (``GYMRPC_TLS``).
        shard_weights: With several servers, each one's relative share of the batch
            (equal by default).
        discover_workers: With a single target, spread the batch over every worker
            process the server lists (``GetServerInfoResponse.worker_targets``); False
            keeps the whole batch on the target named.
        evaluation: An evaluation session of the challenge: its episodes are scored on
            the server's secret engines (no ``seed``; see docs/challenge.md).
        **env_options: The environment's own options (e.g. ``step_size=5``).

    Returns:
        The environment (a :class:`gymrpc.sharding.ShardedVectorEnv`, itself a
        ``RemoteVectorEnv``, when it spans several servers); close it (or use it as a
        context manager) when done.

    Example:
        >>> with gymrpc.make_vec("CartPole-v1", num_envs=8, seed=0) as envs:  # doctest: +SKIP
        ...     observations, info = envs.reset()
    """
    # sharding builds on RemoteVectorEnv (each shard is one), so it can only be imported
    # once this module is: make_vec is where the two meet.
    from gymrpc import sharding  # noqa: PLC0415

    # Everything the client can check is checked before any server is contacted.
    if vectorization_mode not in VECTORIZATION_MODES:
        raise ValueError(
            f"vectorization_mode: {vectorization_mode!r}; expected 'vector_entry_point', "
            "'sync' or None"
        )
    check_session_arguments(num_envs, seed)
    targets = sharding.resolve_targets(target)
    if len(targets) == 1 and discover_workers:
        connection = Connection(
            ConnectionSettings.resolve(targets[0], token, root_certificates, tls, timeout)
        )
        try:
            workers = sharding.worker_targets(connection)
        except BaseException:
            connection.close()
            raise
        if len(workers) == 1:
            # A single process: its session goes on the connection that asked.
            return RemoteVectorEnv(
                env_id,
                num_envs,
                autoreset_mode=autoreset_mode,
                vectorization_mode=vectorization_mode,
                seed=seed,
                env_options=env_options,
                connection=connection,
                evaluation=evaluation,
            )
        connection.close()
        targets = workers
    sizes = sharding.shard_sizes(num_envs, len(targets), shard_weights)
    used = [target for target, size in zip(targets, sizes, strict=True) if size]
    if len(used) > 1:
        return sharding.ShardedVectorEnv(
            env_id,
            num_envs,
            targets=targets,
            shard_weights=sizes,
            token=token,
            autoreset_mode=autoreset_mode,
            vectorization_mode=vectorization_mode,
            seed=seed,
            env_options=env_options,
            root_certificates=root_certificates,
            tls=tls,
            timeout=timeout,
            evaluation=evaluation,
        )
    return RemoteVectorEnv(
        env_id,
        num_envs,
        target=used[0],
        token=token,
        autoreset_mode=autoreset_mode,
        vectorization_mode=vectorization_mode,
        seed=seed,
        env_options=env_options,
        root_certificates=root_certificates,
        tls=tls,
        timeout=timeout,
        evaluation=evaluation,
    )
