"""Pytest plugin: run Gymnasium's and Stable-Baselines3's vector-env suites on gymrpc.

Loaded into *their* test runs (``pytest -p gymrpc_peers``, see tests/peers/README.md),
never into gymrpc's own suite. It starts one real gymrpc server in this process, on
127.0.0.1 port 0, and replaces the vector environment classes the suites construct:

=====================================  ===================================================
their constructor                      becomes
=====================================  ===================================================
``gymnasium.vector.SyncVectorEnv``     ``gymrpc.make_vec(..., vectorization_mode="sync")``
``gymnasium.vector.AsyncVectorEnv``    the same (the server runs ``SyncVectorEnv``)
SB3's ``DummyVecEnv``                  ``gymrpc.sb3.RemoteVecEnv(..., vectorization_mode=
                                       "sync")``
SB3's ``SubprocVecEnv``                the same
=====================================  ===================================================

``gymnasium.make_vec`` in ``"sync"``/``"async"`` mode and SB3's ``make_vec_env`` build
their batches through these names, so they are covered too; ``gymnasium.make_vec`` in
``"vector_entry_point"`` mode (a native vector env such as ``CartPoleVectorEnv``) stays
local. ``--gymrpc-replace`` narrows the list (e.g. ``sync,dummy`` keeps the process-based
envs local, as references).

How the environments reach the server
-------------------------------------
The suites pass environment *callables* (``env_fns``). A gymrpc server builds registered
environment ids, so the plugin registers each batch's callables under a fresh id
(``gymrpc-peers/Batch<n>-v0``), as ``--env-module`` would register a team's own
environments; sub-environment ``i`` is built by callable ``i``. The callables are
shipped by value with cloudpickle, as ``AsyncVectorEnv`` ships them to its worker
processes, and unpickled afresh for every sub-environment: the server's environments
share no object with the test. A test that needs such sharing (a callable returning an
environment the test holds, a counter the test reads back) is a local-only test and
fails here, as it would against a server in another process. What the in-process
server does share with the test is the interpreter: module globals (NumPy's global
random generator, class attributes) are the same objects; see the README.

Nothing else is touched: no assertion, skip or expected failure is added; the suites
run as they are, with different vector environments under test. Server-side options
(``attribute_access="all"``, generous session limits) are what a test server for peers
needs; environments a test leaves open are closed after it, as a local one would be
garbage-collected.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cloudpickle  # type: ignore[import-untyped]
import gymnasium
import pytest

# The server's modules bind the real SyncVectorEnv when imported: import them (through
# the test-support helpers that start a server) before anything is replaced.
from gymrpc_testing import Running, start_server, stop_server

import gymrpc

__all__ = ["LocalOnlyError"]

#: What ``--gymrpc-replace`` may name.
REPLACEABLE = ("sync", "async", "dummy", "subproc")

_REGISTRY_PREFIX = "gymrpc-peers/Batch"
_ids = itertools.count()


class LocalOnlyError(NotImplementedError):
    """Raised for a constructor argument that only a local vector env can honour."""


@dataclass
class _State:
    running: Running | None = None
    open_envs: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    restore: list[tuple[object, str, object]] = field(default_factory=list)


_STATE = _State()


def _target() -> str:
    if _STATE.running is None:
        raise RuntimeError("gymrpc_peers: the server is not running (plugin not configured)")
    return _STATE.running.target


class _BatchEntryPoint:
    """The entry point of one registered batch: sub-environment ``i`` from callable ``i``.

    ``SyncVectorEnv`` on the server calls ``gymnasium.make`` once per sub-environment,
    in index order; each call unpickles the next callable (a fresh copy) and calls it.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, blobs: list[bytes]) -> None:
        self._blobs = blobs
        self._calls = itertools.count()  # next() on a count is atomic

    def __call__(self, **kwargs: Any) -> gymnasium.Env[Any, Any]:
        del kwargs  # the batch's options are in its callables
        index = next(self._calls) % len(self._blobs)
        env_fn = cloudpickle.loads(self._blobs[index])
        env: gymnasium.Env[Any, Any] = env_fn()
        return env

    def __deepcopy__(self, memo: dict[int, Any]) -> _BatchEntryPoint:
        # Wrappers deep-copy the spec, entry point included: it is one registration.
        return self


def register_batch(env_fns: Sequence[Callable[[], Any]]) -> str:
    """Register ``env_fns`` on the (in-process) server's registry; return the new id.

    Raises:
        LocalOnlyError: If a callable cannot be shipped by value (cloudpickle refuses
            it): no server in another process could build it.
    """
    blobs = []
    for index, env_fn in enumerate(env_fns):
        try:
            blobs.append(cloudpickle.dumps(env_fn))
        except Exception as error:
            raise LocalOnlyError(
                f"env_fns[{index}] cannot be shipped to a server ({type(error).__name__}: "
                f"{error}); only a local vector env can call it"
            ) from error
    env_id = f"{_REGISTRY_PREFIX}{next(_ids)}-v0"
    gymnasium.register(
        id=env_id,
        entry_point=_BatchEntryPoint(blobs),
        # gymnasium.make must add nothing around what the callable returns.
        order_enforce=False,
        disable_env_checker=True,
    )
    return env_id


def _track(env: Any) -> Any:
    _STATE.open_envs.add(env)
    return env


def _check_observation_mode(observation_mode: Any) -> None:
    if not (isinstance(observation_mode, str) and observation_mode == "same"):
        raise LocalOnlyError(
            f"observation_mode={observation_mode!r}: gymrpc.make_vec has no observation_mode; "
            "the server batches the sub-environments' spaces as observation_mode='same'"
        )


def remote_sync(
    env_fns: Sequence[Callable[[], Any]],
    *,
    autoreset_mode: Any = gymnasium.vector.AutoresetMode.NEXT_STEP,
    observation_mode: Any = "same",
) -> gymrpc.RemoteVectorEnv:
    """A gymrpc vector env over ``env_fns``, as ``SyncVectorEnv(env_fns, ...)`` would be."""
    env_fns = list(env_fns)
    _check_observation_mode(observation_mode)
    env_id = register_batch(env_fns)
    envs = gymrpc.make_vec(
        env_id,
        num_envs=len(env_fns),
        target=_target(),
        vectorization_mode="sync",
        autoreset_mode=autoreset_mode,
    )
    return _track(envs)  # type: ignore[no-any-return]


def remote_sb3(env_fns: Sequence[Callable[[], Any]]) -> Any:
    """A ``gymrpc.sb3.RemoteVecEnv`` over ``env_fns``, as ``DummyVecEnv(env_fns)`` would be."""
    from gymrpc.sb3 import RemoteVecEnv

    env_fns = list(env_fns)
    env_id = register_batch(env_fns)
    return _track(
        RemoteVecEnv(env_id, num_envs=len(env_fns), target=_target(), vectorization_mode="sync")
    )


# --- the replacement classes ----------------------------------------------------------------
# Classes (not functions) with the original names: the suites' parametrize ids stay the
# same, and isinstance() against them recognises the remote environments. Calling one
# returns the gymrpc object itself (``__new__`` returns it; nothing is subclassed).


class _ReplacementMeta(type):
    remote_type: type

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.remote_type)


class SyncVectorEnv(metaclass=_ReplacementMeta):
    """``gymnasium.vector.SyncVectorEnv`` replaced by a gymrpc remote batch."""

    remote_type = gymrpc.RemoteVectorEnv

    def __new__(  # type: ignore[misc]
        cls,
        env_fns: Sequence[Callable[[], Any]],
        copy: bool = True,
        observation_mode: Any = "same",
        autoreset_mode: Any = gymnasium.vector.AutoresetMode.NEXT_STEP,
    ) -> gymrpc.RemoteVectorEnv:
        # copy: remote results are always new arrays (copy=True's behaviour).
        del copy
        return remote_sync(
            env_fns, autoreset_mode=autoreset_mode, observation_mode=observation_mode
        )


class AsyncVectorEnv(metaclass=_ReplacementMeta):
    """``gymnasium.vector.AsyncVectorEnv`` replaced by a gymrpc remote batch.

    ``shared_memory``, ``context``, ``daemon`` and ``max_concurrency`` choose how the
    local processes run and do not change results: the server has its own machinery.
    A custom ``worker`` changes what a step does, and only a local env can run it.
    """

    remote_type = gymrpc.RemoteVectorEnv

    def __new__(  # type: ignore[misc]  # noqa: PLR0917 - AsyncVectorEnv's signature
        cls,
        env_fns: Sequence[Callable[[], Any]],
        shared_memory: bool = True,
        copy: bool = True,
        context: str | None = None,
        daemon: bool = True,
        worker: Callable[..., None] | None = None,
        observation_mode: Any = "same",
        autoreset_mode: Any = gymnasium.vector.AutoresetMode.NEXT_STEP,
        max_concurrency: int | None = None,
    ) -> gymrpc.RemoteVectorEnv:
        del shared_memory, copy, context, daemon, max_concurrency
        if worker is not None:
            raise LocalOnlyError("worker: a custom AsyncVectorEnv worker runs only locally")
        return remote_sync(
            env_fns, autoreset_mode=autoreset_mode, observation_mode=observation_mode
        )


class DummyVecEnv(metaclass=_ReplacementMeta):
    """Stable-Baselines3's ``DummyVecEnv`` replaced by ``gymrpc.sb3.RemoteVecEnv``."""

    remote_type = object  # set to RemoteVecEnv when SB3 is importable

    def __new__(cls, env_fns: Sequence[Callable[[], Any]]) -> Any:
        return remote_sb3(env_fns)


class SubprocVecEnv(metaclass=_ReplacementMeta):
    """Stable-Baselines3's ``SubprocVecEnv`` replaced by ``gymrpc.sb3.RemoteVecEnv``.

    ``start_method`` chooses how local processes start; the server has its own.
    """

    remote_type = object  # set to RemoteVecEnv when SB3 is importable

    def __new__(cls, env_fns: Sequence[Callable[[], Any]], start_method: str | None = None) -> Any:
        del start_method
        return remote_sb3(env_fns)


# --- pytest hooks ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--gymrpc-replace``: which vector env classes run on gymrpc."""
    group = parser.getgroup("gymrpc-peers", "gymrpc in place of the suite's vector envs")
    group.addoption(
        "--gymrpc-replace",
        default=",".join(REPLACEABLE),
        help=f"comma-separated subset of {','.join(REPLACEABLE)} (default: all)",
    )


_SELECTED = pytest.StashKey[list[str]]()


def _replace(module: object, name: str, value: object) -> None:
    _STATE.restore.append((module, name, getattr(module, name)))
    setattr(module, name, value)


def _replacements(selected: set[str]) -> Iterator[tuple[object, str, object]]:
    import gymnasium.vector

    if "sync" in selected:
        yield gymnasium.vector, "SyncVectorEnv", SyncVectorEnv
    if "async" in selected:
        yield gymnasium.vector, "AsyncVectorEnv", AsyncVectorEnv
    if not selected & {"dummy", "subproc"}:
        return
    try:
        from stable_baselines3.common import env_util
        from stable_baselines3.common import vec_env as sb3_vec_env

        from gymrpc.sb3 import RemoteVecEnv
    except ImportError:
        return
    DummyVecEnv.remote_type = RemoteVecEnv
    SubprocVecEnv.remote_type = RemoteVecEnv
    # make_vec_env looks both names up in env_util's own namespace.
    for module in (sb3_vec_env, env_util):
        if "dummy" in selected:
            yield module, "DummyVecEnv", DummyVecEnv
        if "subproc" in selected:
            yield module, "SubprocVecEnv", SubprocVecEnv


def pytest_configure(config: pytest.Config) -> None:
    """Start the server, then replace the vector env classes (before any collection)."""
    selected = {name.strip() for name in config.getoption("--gymrpc-replace").split(",")}
    unknown = selected - set(REPLACEABLE) - {""}
    if unknown:
        raise pytest.UsageError(
            f"--gymrpc-replace: unknown {sorted(unknown)}; expected names from {REPLACEABLE}"
        )
    config.stash[_SELECTED] = sorted(selected)
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        # pytest-xdist's controller only collects: its workers run the tests (and a
        # crash, such as a segfault in an environment, takes down a worker, not the run).
        return
    _STATE.running = start_server(
        attribute_access="all",
        max_sessions_per_user=100_000,
        max_sessions=100_000,
        max_workers=2048,
        max_concurrent_rpcs=2000,
    )
    for module, name, value in _replacements(selected):
        _replace(module, name, value)


def pytest_report_header(config: pytest.Config) -> str:
    """Say what runs on gymrpc, at the top of the run."""
    selected = config.stash[_SELECTED]
    where = "a server in each xdist worker" if _STATE.running is None else _target()
    return (
        f"gymrpc peers: {', '.join(selected)} replaced by gymrpc remote envs "
        f"({where}, gymrpc {gymrpc.__version__})"
    )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Close the remote envs a test left open (a local one would be garbage-collected)."""
    del item
    for env in list(_STATE.open_envs):
        try:
            env.close()
        except Exception:  # an env broken by its test: nothing to report here
            continue
    _STATE.open_envs.clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put the original classes back and stop the server."""
    del config
    while _STATE.restore:
        module, name, value = _STATE.restore.pop()
        setattr(module, name, value)
    if _STATE.running is not None:
        stop_server(_STATE.running)
        _STATE.running = None
