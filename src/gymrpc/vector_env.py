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
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gymrpc.allocator import tune_allocator
from gymrpc.batching import batch_actions, check_reset_mask, check_seeds
from gymrpc.connection import Connection, ConnectionSettings
from gymrpc.errors import GymrpcError, ResourceExhaustedError, from_status
from gymrpc.modes import autoreset_from_proto, autoreset_to_proto
from gymrpc.spaces import decode_space
from gymrpc.stream import SessionStream
from gymrpc.tensors import decode_tensor, fill_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import decode_info, decode_map, decode_value, fill_value

__all__ = ["RemoteVectorEnv", "make_vec"]

logger = logging.getLogger(__name__)

_VECTORIZATION = {
    None: pb.VECTORIZATION_MODE_UNSPECIFIED,
    "vector_entry_point": pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT,
    "sync": pb.VECTORIZATION_MODE_SYNC,
}


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
    ) -> None:
        if vectorization_mode not in _VECTORIZATION:
            raise ValueError(
                f"vectorization_mode: {vectorization_mode!r}; expected 'vector_entry_point', "
                "'sync' or None"
            )
        tune_allocator()  # large observations: see gymrpc.allocator
        self._connection = Connection(
            ConnectionSettings.resolve(target, token, root_certificates, tls, timeout)
        )
        self._stream: SessionStream | None = None
        self._state = _State.DEFAULT
        self.session_id = ""
        try:
            self.server_info = self._connection.handshake()
            if session_id is None:
                request = pb.CreateSessionRequest(
                    env_id=env_id,
                    num_envs=num_envs,
                    autoreset_mode=autoreset_to_proto(autoreset_mode),
                    vectorization_mode=_VECTORIZATION[vectorization_mode],
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
        self.single_observation_space = decode_space(session.single_observation_space)
        self.single_action_space = decode_space(session.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = decode_map(session.metadata)
        self.metadata["autoreset_mode"] = autoreset_from_proto(session.autoreset_mode)
        self.autoreset_mode = self.metadata["autoreset_mode"]
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
        return decode_value(response.reset.observations), decode_info(response.reset.info)

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
            decode_info(result.info) if result.info.entries else {},
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

    def render(self) -> Any:
        """Return the frames the server renders (``render_mode`` set at creation)."""
        self._unary_ready()
        request = pb.RenderRequest(session_id=self.session_id)
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
    target: str | None = None,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    token: str | None = None,
    seed: int | None = None,
    vectorization_mode: str | None = None,
    timeout: float = 60.0,
    root_certificates: str | os.PathLike[str] | None = None,
    tls: bool | None = None,
    **env_options: Any,
) -> RemoteVectorEnv:
    """Create a remote vector environment, like ``gymnasium.make_vec`` but on a server.

    Args:
        env_id: Registered id on the server, e.g. ``"gymrpc/Turbofan-v0"``.
        num_envs: Number of sub-environments.
        target: Server ``host:port``; ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        autoreset_mode: NEXT_STEP (default), SAME_STEP or DISABLED.
        token: Bearer token; ``GYMRPC_TOKEN`` by default.
        seed: Seed of the first reset without one (sub-environment i gets seed + i).
        vectorization_mode: ``"vector_entry_point"``, ``"sync"`` or ``None``.
        timeout: Deadline in seconds of every call and step.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        tls: Use TLS with the system's CAs (``GYMRPC_TLS``).
        **env_options: The environment's own options (e.g. ``step_size=5``).

    Returns:
        The environment; close it (or use it as a context manager) when done.

    Example:
        >>> with gymrpc.make_vec("CartPole-v1", num_envs=8, seed=0) as envs:  # doctest: +SKIP
        ...     observations, info = envs.reset()
    """
    return RemoteVectorEnv(
        env_id,
        num_envs,
        target=target,
        token=token,
        autoreset_mode=autoreset_mode,
        vectorization_mode=vectorization_mode,
        seed=seed,
        env_options=env_options,
        root_certificates=root_certificates,
        tls=tls,
        timeout=timeout,
    )
