"""``--metrics-address``: a real server, real calls, a real HTTP scrape, exact counts."""

from __future__ import annotations

import re
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import gymnasium
import numpy as np
import pytest
from gymrpc_testing import TOKENS, Running, Serve, create, rpc_error, step_request
from prometheus_client.parser import text_string_to_metric_families

import gymrpc
from gymrpc.tensors import decode_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc_server.cli import build_config
from gymrpc_server.config import ServerConfig
from gymrpc_server.metrics import METRIC_NAMES, _prometheus
from gymrpc_server.server import create_server

# importlib mode puts no test directory on sys.path; the subprocess server lives there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))
from gymrpc_robustness import EXIT_TIMEOUT, ServerProcess, wait_until

ENV = "gymrpc.v1.EnvService/"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[Samples, set[str]]:
    """Every sample of an endpoint, by name and labels, and its family names."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(text):
        # The parser names a counter's family without the _total of its samples.
        families.add(f"{family.name}_total" if family.type == "counter" else family.name)
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled series that does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def metrics_url(running: Running) -> str:
    assert running.server.metrics is not None
    assert running.server.metrics.port is not None
    return f"http://127.0.0.1:{running.server.metrics.port}/metrics"


def reset_request(sequence: int, session_id: str, seed: int) -> pb.StreamSessionRequest:
    request = pb.StreamSessionRequest(sequence=sequence)
    request.reset.session_id = session_id
    request.reset.seed = seed
    return request


def stream_step(sequence: int, session_id: str, values: list[int]) -> pb.StreamSessionRequest:
    return pb.StreamSessionRequest(sequence=sequence, step=step_request(session_id, values))


def drain(responses: Iterator[pb.StreamSessionResponse]) -> None:
    """Wait for the server to end a half-closed stream."""
    for _ in responses:
        pass


def test_a_scrape_counts_calls_steps_episodes_and_sessions_exactly(serve: Serve) -> None:
    running = serve(metrics_address="127.0.0.1:0")
    url = metrics_url(running)
    before, families = scrape(url)
    assert set(METRIC_NAMES) <= families  # every family, before its first sample
    assert value(before, "gymrpc_active_sessions") == 0

    stub = running.stub()
    session = create(stub, "CartPole-v1", 4)
    during, _ = scrape(url)
    assert value(during, "gymrpc_active_sessions") == 1

    steps, terminated, truncated = 60, 0, 0
    stream = running.stream(stub)
    assert stream.round_trip(reset_request(1, session.session_id, seed=3)).HasField("reset")
    for sequence in range(2, steps + 2):
        # Always pushing right ends CartPole episodes in about ten steps.
        response = stream.round_trip(stream_step(sequence, session.session_id, [1, 1, 1, 1]))
        assert response.HasField("step"), response
        terminated += int(decode_tensor(response.step.terminations).sum())
        truncated += int(decode_tensor(response.step.truncations).sum())
    # One refused step: counted as an error, not as a step.
    refused = stream.round_trip(stream_step(steps + 2, session.session_id, [0, 0, 9, 0]))
    assert refused.HasField("error")
    stream.close()
    drain(stream.responses)  # the server ends a half-closed stream with OK
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.session_id), timeout=10)
    missing = rpc_error(lambda: stub.Step(step_request(session.session_id, [0, 0, 0, 0])))
    assert missing.code() is grpc.StatusCode.NOT_FOUND

    after, _ = scrape(url)
    env = {"env_id": "CartPole-v1"}
    assert terminated > 0
    assert value(after, "gymrpc_env_steps_total", **env) == 4 * steps
    assert value(after, "gymrpc_batch_steps_total", **env) == steps
    assert value(after, "gymrpc_step_duration_seconds_count", **env) == steps
    assert value(after, "gymrpc_step_duration_seconds_bucket", le="+Inf", **env) == steps
    assert value(after, "gymrpc_episodes_total", ending="terminated", reason="", **env) == (
        terminated
    )
    assert value(after, "gymrpc_episodes_total", ending="truncated", reason="", **env) == (
        truncated
    )
    assert value(after, "gymrpc_active_sessions") == 0
    assert value(after, "gymrpc_errors_total", reason="INVALID_ACTION") == 1
    assert value(after, "gymrpc_errors_total", reason="SESSION_NOT_FOUND") == 1
    for method, status in [
        ("CreateSession", "OK"),
        ("StreamSession", "OK"),
        ("CloseSession", "OK"),
        ("Step", "NOT_FOUND"),
    ]:
        labels = {"grpc_method": ENV + method}
        assert value(after, "grpc_server_call_started_total", **labels) == 1, method
        assert (
            value(after, "grpc_server_call_duration_seconds_count", grpc_status=status, **labels)
            == 1
        ), method
    # The stream's duration is its life: at least the sum of the steps it carried.
    stream_seconds = value(
        after,
        "grpc_server_call_duration_seconds_sum",
        grpc_method=ENV + "StreamSession",
        grpc_status="OK",
    )
    assert stream_seconds >= value(after, "gymrpc_step_duration_seconds_sum", **env) > 0
    assert value(after, "gymrpc_credentials_refused_total") == 0


@pytest.mark.parametrize("autoreset_mode", ["NEXT_STEP", "SAME_STEP"])
def test_episodes_are_counted_with_the_reason_the_environment_declares(
    serve: Serve, autoreset_mode: str
) -> None:
    running = serve(metrics_address="127.0.0.1:0")
    env = gymrpc.make_vec(
        "gymrpc/Turbofan-v0",
        6,
        target=running.target,
        autoreset_mode=autoreset_mode,
        seed=5,
        step_size=5,
        max_episode_steps=40,
        discover_workers=False,
    )
    seen: dict[tuple[str, int], int] = {}
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(80):
        # Mostly flying, sometimes selling: episodes end by sale, failure and time.
        actions = np.where(rng.random(6) < 0.04, 2, 0)
        _, _, terminations, truncations, info = env.step(actions)
        ends = info.get("final_info", {}) if autoreset_mode == "SAME_STEP" else info
        for index in np.flatnonzero(terminations | truncations):
            kind = "terminated" if terminations[index] else "truncated"
            key = (kind, int(ends["reason"][index]))
            seen[key] = seen.get(key, 0) + 1
    env.close()
    samples, _ = scrape(metrics_url(running))
    names = {1: "failure", 2: "sold", 3: "truncated"}
    assert len(seen) >= 2, seen  # more than one kind of ending
    counted = {
        (dict(labels)["ending"], dict(labels)["reason"]): count
        for (name, labels), count in samples.items()
        if name == "gymrpc_episodes_total"
    }
    assert counted == {(kind, names[code]): count for (kind, code), count in seen.items()}


class _OddReasons(gymnasium.Env[np.ndarray, np.int64]):
    """Declares reason codes, then reports words: its episodes count, without reasons."""

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium's convention)
        "render_modes": [],
        "gymrpc.episode_reason": {"key": "reason", "names": {1: "done"}},
    }
    observation_space = gymnasium.spaces.Box(0.0, 1.0, (1,))
    action_space = gymnasium.spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._t += 1
        ended = self._t == 2
        return np.zeros(1, np.float32), 1.0, ended, False, {"reason": "over"} if ended else {}


@pytest.fixture
def odd_reasons() -> Iterator[str]:
    env_id = "gymrpc-metrics-test/OddReasons-v0"
    gymnasium.register(env_id, entry_point=lambda **_: _OddReasons())
    yield env_id
    del gymnasium.registry[env_id]


def test_reasons_that_cannot_be_counted_never_fail_a_step(
    serve: Serve, odd_reasons: str, caplog: pytest.LogCaptureFixture
) -> None:
    running = serve(metrics_address="127.0.0.1:0")
    env = gymrpc.make_vec(
        odd_reasons, 3, target=running.target, vectorization_mode="sync", discover_workers=False
    )
    env.reset(seed=0)
    ended = 0
    for _ in range(6):
        _, _, terminations, _, _ = env.step(np.zeros(3, dtype=np.int64))
        ended += int(terminations.sum())
    env.close()
    samples, _ = scrape(metrics_url(running))
    labels = {"env_id": odd_reasons, "ending": "terminated", "reason": ""}
    assert ended == 6  # every second step ends all three
    assert value(samples, "gymrpc_episodes_total", **labels) == ended
    assert value(samples, "gymrpc_batch_steps_total", env_id=odd_reasons) == 6
    warnings = [r.getMessage() for r in caplog.records if "cannot be counted" in r.getMessage()]
    assert warnings == [
        f"metrics: {odd_reasons} reports episode reasons that cannot be counted; "
        "counting its episodes without them"
    ]


def test_refused_credentials_and_quotas_are_counted(serve: Serve, tokens_file: Path) -> None:
    running = serve(
        metrics_address="127.0.0.1:0",
        tokens_file=tokens_file,
        step_quota=8,
        max_sessions_per_user=1,
    )
    anonymous = running.stub()
    for _ in range(2):
        refused = rpc_error(lambda: anonymous.GetServerInfo(pb.GetServerInfoRequest(), timeout=10))
        assert refused.code() is grpc.StatusCode.UNAUTHENTICATED
    alice = running.stub(TOKENS["alice"])
    session = create(alice, "CartPole-v1", 4)
    second = rpc_error(lambda: create(alice, "CartPole-v1", 1))
    assert second.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    alice.Reset(pb.ResetRequest(session_id=session.session_id, seed=1), timeout=10)
    for _ in range(2):  # 8 steps: the whole quota
        alice.Step(step_request(session.session_id, [0, 1, 0, 1]), timeout=10)
    over = rpc_error(lambda: alice.Step(step_request(session.session_id, [0, 1, 0, 1])))
    assert over.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

    samples, _ = scrape(metrics_url(running))
    assert value(samples, "gymrpc_credentials_refused_total") == 2
    assert (
        value(
            samples,
            "grpc_server_call_duration_seconds_count",
            grpc_method=ENV + "GetServerInfo",
            grpc_status="UNAUTHENTICATED",
        )
        == 2
    )
    assert value(samples, "gymrpc_quota_refusals_total", limit="step_quota") == 1
    assert value(samples, "gymrpc_quota_refusals_total", limit="max_sessions_per_user") == 1
    assert value(samples, "gymrpc_quota_refusals_total", limit="max_sessions") == 0
    assert value(samples, "gymrpc_errors_total", reason="STEP_QUOTA_EXHAUSTED") == 1
    assert value(samples, "gymrpc_errors_total", reason="SESSION_LIMIT") == 1
    assert value(samples, "gymrpc_env_steps_total", env_id="CartPole-v1") == 8
    # No label carries a user: the users' names appear nowhere on the page.
    with urllib.request.urlopen(metrics_url(running), timeout=10) as response:
        page = response.read().decode()
    assert not any(user in page for user in TOKENS)


def test_metrics_are_off_by_default_and_a_busy_port_is_refused(serve: Serve) -> None:
    assert serve().server.metrics is None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=rf"metrics on 127\.0\.0\.1:{port} \(--metrics-addr"):
            create_server(
                ServerConfig(
                    address="127.0.0.1:0", database="none", metrics_address=f"127.0.0.1:{port}"
                )
            )


def test_the_flag_and_its_environment_variable() -> None:
    assert build_config([], {})[0].metrics_address is None
    assert build_config([], {"GYMRPC_METRICS_ADDRESS": "0.0.0.0:9464"})[0].metrics_address == (
        "0.0.0.0:9464"
    )
    config = build_config(["--metrics-address", "[::1]:0"], {"GYMRPC_METRICS_ADDRESS": "x:1"})[0]
    assert config.metrics_address == "[::1]:0"
    with pytest.raises(SystemExit):
        build_config(["--metrics-address", "nohost"], {})


def test_the_deployment_guide_lists_every_metric() -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
    documented = re.findall(r"^\| `((?:grpc|gymrpc)_[a-z_]+)` \|", guide.read_text(), re.MULTILINE)
    assert sorted(documented) == sorted(METRIC_NAMES)


def test_a_missing_extra_names_the_install_command() -> None:
    with pytest.raises(ValueError, match=re.escape("pip install -e '.[metrics]'")):
        _prometheus("prometheus_client_that_does_not_exist")


def test_workers_are_scraped_as_one_endpoint() -> None:
    with ServerProcess("--workers", "2", "--metrics-address", "127.0.0.1:0") as server:
        # The parent logs its endpoint before the workers start, so before "serving on".
        match = re.search(r"metrics of all workers on (http://\S+/metrics)", server.log.text)
        assert match is not None, server.log.text
        url = match.group(1)
        env = gymrpc.make_vec("CartPole-v1", 6, target=server.target, seed=1, timeout=30)
        assert isinstance(env, gymrpc.ShardedVectorEnv)
        assert len(env.targets) == 2
        env.reset()
        for _ in range(25):
            env.step(np.ones(6, dtype=np.int64))
        # Workers write their open sessions every second: wait for both.
        assert wait_until(lambda: value(scrape(url)[0], "gymrpc_active_sessions") == 2, 30)
        env.close()
        samples, _ = scrape(url)
        cartpole = {"env_id": "CartPole-v1"}
        assert value(samples, "gymrpc_env_steps_total", **cartpole) == 6 * 25
        assert value(samples, "gymrpc_batch_steps_total", **cartpole) == 2 * 25  # one per worker
        assert value(samples, "gymrpc_step_duration_seconds_count", **cartpole) == 2 * 25
        started = value(
            samples, "grpc_server_call_started_total", grpc_method=ENV + "CreateSession"
        )
        assert started == 2
        assert wait_until(lambda: value(scrape(url)[0], "gymrpc_active_sessions") == 0, 30)
        server.terminate()
        assert server.wait(EXIT_TIMEOUT) == 0, server.log.text
    with pytest.raises(OSError, match="Connection refused"):
        scrape(url)
