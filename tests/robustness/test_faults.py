"""Faults of the world around a session: dead clients, stopped servers, a cut network.

``tests/gymrpc/test_client_faults.py`` covers a server that dies and a stream cancelled
inside the client. Here the faults come from outside, as in production: a client
process is SIGKILLed while it steps, an orchestrator sends SIGTERM to a busy server,
and a proxy between client and server drops its TCP connections while steps are in
flight. Everything listens on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymrpc_testing import Running, Serve
from vector_reference import (
    MODES,
    Lockstep,
    StepResult,
    assert_equivalent,
    remote_env,
    server_session,
)

import gymrpc
from gymrpc.connection import Connection, ConnectionSettings
from gymrpc.errors import (
    ConnectionLostError,
    DeadlineExceededError,
    SessionNotFoundError,
    UnavailableError,
)
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc_server.auth import Identity, Role
from gymrpc_server.session import Session

# importlib mode puts no test directory on sys.path; the shared machinery lives here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gymrpc_robustness import (
    EXIT_TIMEOUT,
    START_TIMEOUT,
    ServerProcess,
    start_python,
    wait_until,
)

SLOW = "gymrpc-test/Slow-v0"
DICT_OBS = "gymrpc-test/DictObs-v0"
ANONYMOUS = Identity("anonymous", Role.USER)
#: Short enough for a quick test, long enough that a stepping client never idles out.
IDLE_TIMEOUT = 0.5
#: Bound on anything that takes a few idle timeouts, or a few round trips, when healthy.
SOON = 20.0

_T = TypeVar("_T")


class Stepper:
    """Steps a remote batch in a thread until stopped or until a step fails.

    Args:
        env: The batch, reset already.

    Attributes:
        steps: Steps taken so far.
        error: What the failed step raised, if one failed.
        failed_at: ``time.monotonic()`` when it failed.
    """

    def __init__(self, env: gymrpc.RemoteVectorEnv) -> None:
        self.env = env
        self.steps = 0
        self.error: Exception | None = None
        self.failed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.env.step(self.env.action_space.sample())
                self.steps += 1
        except Exception as error:
            self.failed_at = time.monotonic()
            self.error = error

    def stop(self) -> None:
        """Stop stepping; return once the thread has ended."""
        self._stop.set()
        self.join()

    def join(self) -> None:
        self._thread.join(SOON)
        assert not self._thread.is_alive(), f"a step is hanging after {self.steps} steps"

    def stop_quietly(self) -> None:
        """Stop stepping, whatever state the thread is in (for clean-ups)."""
        self._stop.set()
        self._thread.join(SOON)


def stepping(stack: ExitStack, env: gymrpc.RemoteVectorEnv) -> Stepper:
    """Reset ``env`` and step it in a thread; stop and close it when ``stack`` closes."""
    stack.callback(env.close)
    env.reset(seed=0)
    stepper = Stepper(env)
    stack.callback(stepper.stop_quietly)
    assert wait_until(lambda: stepper.steps > 0 or stepper.error is not None, SOON)
    return stepper


# --- a client killed while it steps ---------------------------------------------------------

KILLED_CLIENT = """
    import json
    import sys

    import gymrpc

    target, env_id, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    envs = gymrpc.make_vec(env_id, num_envs=2, target=target, seed=0, timeout=30.0, **options)
    envs.reset()
    print("session", envs.session_id, flush=True)
    while True:
        envs.step(envs.action_space.sample())
"""


def executing(session: Session) -> bool:
    """Whether the server is executing a stream request of ``session`` now.

    The server records a request's sequence number when it starts it and the answer
    (for idempotent retries) when it has finished it.
    """
    guard = session.sequence
    replay = guard._replay  # the test inspects the guard's state on purpose
    return guard.last_sequence > 0 and (replay is None or replay.sequence < guard.last_sequence)


@pytest.mark.parametrize(
    ("env_id", "options"),
    [
        pytest.param("CartPole-v1", {}, id="stepping"),
        pytest.param(SLOW, {"delay": 0.3}, id="during-a-slow-step"),
    ],
)
def test_killed_client_is_freed_by_the_idle_timeout(
    serve: Serve, env_id: str, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    running = serve(session_idle_timeout=IDLE_TIMEOUT)
    registry = running.server.registry
    with ExitStack() as stack:
        stack.enter_context(caplog.at_level(logging.INFO, logger="gymrpc_server.registry"))
        survivor = stepping(stack, gymrpc.make_vec("CartPole-v1", 4, target=running.target))
        script = textwrap.dedent(KILLED_CLIENT)
        process, output = start_python("-c", script, running.target, env_id, json.dumps(options))
        assert process.stdout is not None
        stack.callback(process.stdout.close)
        stack.callback(output.join, EXIT_TIMEOUT)
        stack.callback(process.wait, EXIT_TIMEOUT)
        stack.callback(process.kill)
        session_id = output.wait_for(r"^session (\S+)$", START_TIMEOUT).group(1)
        session = registry.get(ANONYMOUS, session_id)
        # Kill it in the middle of its stream: while it steps without a pause, or while
        # the server runs one of its (slow) steps.
        if env_id == SLOW:
            assert wait_until(lambda: executing(session), SOON)
        else:
            taken = session.steps_taken
            assert wait_until(lambda: session.steps_taken > taken, SOON)
        process.kill()
        assert process.wait(EXIT_TIMEOUT) == -9
        survived = survivor.steps

        # Its session idles out; the survivor, stepping all along, keeps its own.
        assert wait_until(lambda: len(registry) == 1, SOON), f"{len(registry)} sessions"
        with pytest.raises(SessionNotFoundError):
            registry.get(ANONYMOUS, session_id)
        assert session.closed
        assert f"session {session_id[:8]} expired after idling" in caplog.text
        registry.get(ANONYMOUS, survivor.env.session_id)
        assert wait_until(lambda: survivor.steps > survived, SOON)
        assert survivor.error is None
        # And the server still takes new clients.
        with gymrpc.make_vec(env_id, 1, target=running.target, **options) as newcomer:
            newcomer.reset(seed=1)
            newcomer.step(np.array([1]))
        survivor.stop()
        assert survivor.error is None

    # Nothing of the dead client is left in flight: a graceful stop has nothing to wait for.
    with caplog.at_level(logging.WARNING, logger="gymrpc_server"):
        assert running.server.stop(grace=SOON).wait(2 * SOON)
    assert not [r.getMessage() for r in caplog.records if "grace period" in r.getMessage()]
    assert len(registry) == 0


# --- a server stopped by SIGTERM under load ---------------------------------------------------

GRACE = 10.0
#: The slow step: long enough to still run when the other clients are refused.
SLOW_DELAY = 3.0
PROBE_TIMEOUT = 0.5
FAST_CLIENTS = 4


def busy(connection: Connection, session_id: str) -> bool:
    """Whether the server is running a request of the session.

    GetSession waits for a session's request in progress, so it misses a short deadline
    exactly while one runs.
    """
    request = pb.GetSessionRequest(session_id=session_id)
    try:
        connection.call(connection.stub.GetSession, request, timeout=PROBE_TIMEOUT)
    except DeadlineExceededError:
        return True
    return False


@pytest.mark.timeout(180)
def test_sigterm_under_load_finishes_requests_in_flight_then_refuses() -> None:
    with ExitStack() as stack:
        server = stack.enter_context(ServerProcess("--grace-period", str(GRACE)))
        fast = [
            stepping(stack, gymrpc.make_vec("CartPole-v1", 4, target=server.target, timeout=30))
            for _ in range(FAST_CLIENTS)
        ]
        slow = gymrpc.make_vec(SLOW, 1, target=server.target, timeout=30, delay=SLOW_DELAY)
        stack.callback(slow.close)
        probe = Connection(ConnectionSettings.resolve(server.target, timeout=30))
        stack.callback(probe.close)
        slow.reset(seed=0)
        slow.step_async(np.array([1]))
        assert wait_until(lambda: busy(probe, slow.session_id), SOON)

        server.terminate()

        # The step in flight completes normally...
        observations, rewards, terminations, truncations, _ = slow.step_wait()
        slow_done = time.monotonic()
        assert_equivalent(
            (observations, rewards, terminations, truncations),
            (np.ones((1, 1), np.float32), np.ones(1), np.zeros(1, bool), np.zeros(1, bool)),
            "the step in flight at SIGTERM",
        )
        # ...and every later request is refused as unavailable, without waiting.
        with pytest.raises(UnavailableError):
            slow.step(np.array([0]))
        for stepper in fast:
            stepper.join()
            assert stepper.steps > 0
            assert isinstance(stepper.error, UnavailableError), repr(stepper.error)
            # Refused while the slow step still ran: at once, not at the end of the grace.
            assert stepper.failed_at < slow_done
        assert server.wait(GRACE + EXIT_TIMEOUT) == 0, server.log.text
        log = server.log.text
        assert "SIGTERM received; stopping gracefully" in log
        assert "grace period" not in log, log
        with pytest.raises(UnavailableError):
            gymrpc.make_vec("CartPole-v1", 1, target=server.target, timeout=10)


# --- a network that cuts connections while steps are in flight ---------------------------------


class TcpProxy:
    """Forwards TCP connections on 127.0.0.1 to a server; can cut them all at once.

    Each connection is served by one thread that copies bytes both ways; :meth:`cut`
    shuts both of its sockets down, so that the client and the server each see their
    connection end in the middle of whatever was on the wire, as after a network
    failure or a proxy restart.

    Args:
        upstream_port: The server's port on 127.0.0.1.

    Attributes:
        target: ``127.0.0.1:PORT`` for clients.
        accepted: Connections accepted so far.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        # accept() wakes up regularly to notice close().
        self._listener.settimeout(0.05)
        self.target = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self._refuse = 0
        self._lock = threading.Lock()
        self._live: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="proxy", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.setblocking(True)
            with self._lock:
                refuse, self._refuse = self._refuse > 0, max(self._refuse - 1, 0)
            if refuse:
                _shut(client)
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:  # the server is gone: so is this connection
                client.close()
                continue
            for end in (client, upstream):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                self._live += [client, upstream]
            self._start(self._forward, client, upstream)

    @property
    def connections(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._live) // 2

    def _forward(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            with selectors.DefaultSelector() as selector:
                for end in peers:
                    selector.register(end, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select():
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(1 << 16)
                        if not data:
                            return
                        peers[source].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._live = [end for end in self._live if end not in peers]
            for end in peers:
                _shut(end)
                end.close()

    def cut(self, refuse: int = 0) -> int:
        """Cut every connection at once; return how many there were.

        Args:
            refuse: How many of the next connections to close as soon as they are
                accepted, as a network that flaps (or a proxy that restarts) does.
        """
        with self._lock:
            live, self._live = self._live, []
            self._refuse = refuse
        for end in live:
            _shut(end)
        return len(live) // 2

    def close(self) -> None:
        """Stop accepting, cut every connection and wait for the threads."""
        self._closed.set()
        self.cut()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(SOON)
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _shut(end: socket.socket) -> None:
    with suppress(OSError):  # already cut, or closed by its peer
        end.shutdown(socket.SHUT_RDWR)


#: Where in a request's life the network is cut: before it is sent (it goes out on a
#: dead stream), right after it is sent (it may be lost on the way), and once the server
#: has it (its answer is lost on the way back, or the server is still executing it).
CUT_POINTS = ("before-send", "after-send", "at-server")
CUT_STEPS = 60
#: Pause after each cut, so that the proxy has counted the cut connection closed and
#: the next cut meets exactly one live connection (test_a_network_that_flaps_is_survived
#: covers the client acting at once on a link that is still failing).
SETTLE = 0.05


class CutNetwork:
    """Cuts ``proxy`` at a given point of each request of ``session``; counts the cuts."""

    def __init__(self, proxy: TcpProxy, session: Session) -> None:
        self.proxy = proxy
        self.session = session
        self.cuts = 0
        self.dropped = 0

    def _cut(self) -> None:
        self.cuts += 1
        self.dropped += self.proxy.cut()
        time.sleep(SETTLE)

    def across(self, point: str, send: Callable[[], None], wait: Callable[[], _T]) -> _T:
        """Send a request, wait for its answer, and cut the network at ``point`` between."""
        known = self.session.sequence.last_sequence
        if point == "before-send":
            self._cut()
        send()
        if point == "after-send":
            self._cut()
        if point == "at-server":
            assert wait_until(lambda: self.session.sequence.last_sequence > known, SOON, 0.001)
            self._cut()
        return wait()


def cut_and_direct(
    stack: ExitStack, running: Running, mode: AutoresetMode
) -> tuple[TcpProxy, Lockstep]:
    """A proxy, and a lockstep pair of one env behind the proxy and one connected directly.

    The environment has long episodes with rare random ends, so that every episode
    sees dozens of cuts.
    """
    options: dict[str, Any] = {"horizon": 200, "end_probability": 0.02}
    proxy = stack.enter_context(TcpProxy(running.port))
    cut_env = remote_env(proxy.target, DICT_OBS, 3, mode, **options)
    direct_env = remote_env(running.target, DICT_OBS, 3, mode, **options)
    return proxy, stack.enter_context(Lockstep(cut_env, direct_env))


@pytest.mark.parametrize("mode", MODES)
def test_network_cuts_mid_episode_are_survived_bit_identically(
    running: Running, mode: AutoresetMode, caplog: pytest.LogCaptureFixture
) -> None:
    """Every request crosses a network cut; the run equals one over a direct connection.

    The client re-attaches to its session after each cut and sends again what had no
    answer; the server answers a repeat from memory, so no step runs twice.
    """
    with ExitStack() as stack:
        proxy, pair = cut_and_direct(stack, running, mode)
        cut_env, direct_env = pair.remote, pair.local
        assert isinstance(cut_env, gymrpc.RemoteVectorEnv)
        assert isinstance(direct_env, gymrpc.RemoteVectorEnv)
        stack.enter_context(caplog.at_level(logging.INFO, logger="gymrpc.stream"))
        network = CutNetwork(proxy, server_session(running, cut_env))
        pair.reset(seed=3)
        for step in range(CUT_STEPS):
            point = CUT_POINTS[step % len(CUT_POINTS)]
            actions = cut_env.action_space.sample()
            assert_equivalent(actions, direct_env.action_space.sample(), "sampled actions")
            got: StepResult = network.across(
                point, lambda: cut_env.step_async(actions), cut_env.step_wait
            )
            want = direct_env.step(actions)
            assert_equivalent(got, want, f"step {step}, cut {point}")
            ended = want[2] | want[3]
            pair.events["ended"] += int(ended.sum())
            if mode is AutoresetMode.DISABLED and ended.any():
                reset_options = {"reset_mask": ended}
                got_reset = network.across(
                    point, lambda: cut_env.reset_async(options=reset_options), cut_env.reset_wait
                )
                want_reset = direct_env.reset(options=reset_options)
                assert_equivalent(got_reset, want_reset, f"reset after step {step}, cut {point}")

        # Nothing ran twice: both sessions took exactly the steps asked for.
        steps_taken = [server_session(running, env).steps_taken for env in (cut_env, direct_env)]
        assert steps_taken == [CUT_STEPS * 3] * 2
        assert pair.events["ended"] > 0, "no episode ended: pick other options"
        # Every cut broke the one connection in use; each break was repaired by one
        # re-attach, over a new connection (sometimes two: the first new stream can still
        # be routed to the transport that is closing, and is then retried).
        reattached = [r for r in caplog.records if "re-attaching" in r.getMessage()]
        assert network.dropped == network.cuts >= CUT_STEPS
        assert len(reattached) == network.cuts
        assert network.cuts + 1 <= proxy.accepted <= 2 * network.cuts + 1


def test_a_network_that_flaps_is_survived(running: Running) -> None:
    """A cut, then a reconnection that fails too: a flapping link or a restarting proxy.

    The session and the server are fine and the network is back a moment later; the
    client keeps re-attaching within its window (found: it used to give up after one
    failed attempt and lose a healthy session), and the run equals a direct one.
    """
    with ExitStack() as stack:
        proxy, pair = cut_and_direct(stack, running, AutoresetMode.NEXT_STEP)
        pair.reset(seed=3)
        accepted = proxy.accepted
        for _ in range(3):
            proxy.cut(refuse=1)
            pair.step()
        # Each flap refused one connection and the re-attach opened another.
        assert proxy.accepted >= accepted + 3
        for env in (pair.remote, pair.local):
            assert isinstance(env, gymrpc.RemoteVectorEnv)
            assert server_session(running, env).steps_taken == 9  # 3 steps of 3 envs


def test_a_network_that_stays_down_fails_cleanly(running: Running) -> None:
    """A link that does not come back ends in ConnectionLostError, not a hang."""
    with ExitStack() as stack:
        proxy, pair = cut_and_direct(stack, running, AutoresetMode.NEXT_STEP)
        pair.reset(seed=3)
        proxy.cut(refuse=1_000_000)
        # The client gives up when its re-attach window closes, not at the step's
        # deadline (60 s); pytest's timeout would catch a hang.
        with pytest.raises(ConnectionLostError, match=r"could not re-attach .* within 5 s"):
            pair.remote.step(pair.remote.action_space.sample())


def connects(target: str) -> bool:
    """Whether a client can open a session at ``target`` now."""
    try:
        gymrpc.make_vec("CartPole-v1", 1, target=target, timeout=10).close()
    except UnavailableError:
        return False
    return True


def test_proxy_forwards_cuts_and_refuses(running: Running) -> None:
    """The proxy itself: traffic passes, a cut ends the call, the next call reconnects."""
    with TcpProxy(running.port) as proxy:
        env = gymrpc.make_vec("CartPole-v1", 1, target=proxy.target, timeout=10)
        env.reset(seed=0)
        assert proxy.cut() == 1
        env.step(np.array([1]))
        assert proxy.accepted == 2
        env.close()
        assert wait_until(lambda: proxy.connections == 0, SOON)
        assert proxy.cut(refuse=1) == 0
        assert not connects(proxy.target)
        # gRPC waits (about a second) before it connects to a failed address again.
        assert wait_until(lambda: connects(proxy.target), SOON, 0.1)
        assert proxy.accepted == 3
    assert not connects(proxy.target)
