"""One VectorEnv over many servers: splitting, joining, seeding, faults and closing.

The reference is the same batch on one server: a sharded batch over three real servers
must give ``data_equivalence``-equal observations, rewards, flags and infos at every
call, in every autoreset mode, with staggered partial resets and seed lists.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, VectorEnv
from gymrpc_testing import Running, Serve
from vector_reference import MODES, Lockstep, assert_equivalent, remote_env, server_session

import gymrpc
from gymrpc.errors import (
    ConnectionLostError,
    EnvironmentFailureError,
    InvalidActionError,
    InvalidArgumentError,
    InvalidSeedError,
    ResetNeededError,
    UnavailableError,
)
from gymrpc.sharding import (
    ShardedVectorEnv,
    merge_infos,
    resolve_targets,
    shard_sizes,
)
from gymrpc_server.auth import Identity, Role

# importlib mode puts no test directory on sys.path; the proxy and the subprocess server
# of the robustness tests live there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))
from gymrpc_robustness import ServerProcess
from test_faults import TcpProxy

ANONYMOUS = Identity("anonymous", Role.USER)
NUM_ENVS = 7  # 3 + 2 + 2 over three servers: uneven shards
STEPS = 150
CARTPOLE = "CartPole-v1"
DICT_OBS = "gymrpc-test/DictObs-v0"
TURBOFAN = "gymrpc/Turbofan-v0"


@pytest.fixture
def servers(serve: Serve) -> list[Running]:
    """Three servers that let every caller use Call, GetAttr and SetAttr."""
    return [serve(attribute_access="all") for _ in range(3)]


@pytest.fixture
def reference(serve: Serve) -> Running:
    """A fourth server, for the same batch in one session."""
    return serve(attribute_access="all")


def sharded(
    servers: list[Running], env_id: str, mode: AutoresetMode = AutoresetMode.NEXT_STEP, **kw: Any
) -> ShardedVectorEnv:
    env = gymrpc.make_vec(
        env_id,
        kw.pop("num_envs", NUM_ENVS),
        target=[server.target for server in servers],
        autoreset_mode=mode,
        vectorization_mode=kw.pop("vectorization_mode", "sync"),
        timeout=30,
        **kw,
    )
    assert isinstance(env, ShardedVectorEnv)
    return env


def open_sessions(*servers: Running) -> list[int]:
    return [len(server.server.registry) for server in servers]


# --- splitting and joining, without servers -----------------------------------------------


def test_shard_sizes_are_balanced_or_weighted() -> None:
    assert shard_sizes(7, 3) == [3, 2, 2]
    assert shard_sizes(2, 3) == [1, 1, 0]
    assert shard_sizes(64, 3, [1, 1, 2]) == [16, 16, 32]
    assert shard_sizes(10, 3, [1, 1, 1]) == [4, 3, 3]
    assert sum(shard_sizes(1000, 7, [0.3, 1, 2, 0, 5, 1e-9, 3])) == 1000
    assert shard_sizes(5, 2, [0, 1]) == [0, 5]
    with pytest.raises(ValueError, match="2 weights for 3 servers"):
        shard_sizes(7, 3, [1, 2])
    with pytest.raises(ValueError, match="positive sum"):
        shard_sizes(7, 2, [0, 0])
    with pytest.raises(ValueError, match="finite numbers"):
        shard_sizes(7, 2, [1, float("nan")])


def test_targets_come_as_lists_commas_the_environment_or_dns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_targets("a:1, b:2,,c:3") == ["a:1", "b:2", "c:3"]
    assert resolve_targets(["a:1", "b:2,c:3"]) == ["a:1", "b:2", "c:3"]
    monkeypatch.setenv("GYMRPC_TARGET", "x:1,y:2")
    assert resolve_targets(None) == ["x:1", "y:2"]
    # Every address of a DNS name is a server (here the name has one).
    assert resolve_targets("dns:///localhost:5000, dns:127.0.0.2:6000") == [
        "127.0.0.1:5000",
        "127.0.0.2:6000",
    ]
    with pytest.raises(ValueError, match="authority is not supported"):
        resolve_targets("dns://8.8.8.8/example.com:50051")
    with pytest.raises(ValueError, match=re.escape("expected 'dns:///name:port'")):
        resolve_targets("dns:///example.com")
    with pytest.raises(UnavailableError, match="does not resolve"):
        resolve_targets("dns:///no-such-host.invalid:50051")
    with pytest.raises(ValueError, match="names no server"):
        resolve_targets(" , ")
    with pytest.raises(TypeError, match="expected str"):
        resolve_targets(["a:1", 2])  # type: ignore[list-item]


class _Infos(VectorEnv[Any, Any, Any]):
    """Only for Gymnasium's own ``_add_info``, the rule a merged info must follow."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs


def _vector_info(env_infos: list[dict[str, Any]]) -> dict[str, Any]:
    builder = _Infos(len(env_infos))
    info: dict[str, Any] = {}
    for index, env_info in enumerate(env_infos):
        info = builder._add_info(info, env_info, index)
    return info


def _env_info(rng: np.random.Generator, index: int) -> dict[str, Any]:
    """An info with keys that only some sub-environments report, nested ones too."""
    info: dict[str, Any] = {"step": int(rng.integers(100)), "weight": np.float32(rng.random())}
    if rng.random() < 0.3:
        info["cause"] = "crash" if index % 2 else "sold"
    if rng.random() < 0.3:
        info["final_obs"] = rng.random(3)
        info["final_info"] = {"episode": {"r": float(rng.random()), "l": index}, "odd": True}
    if rng.random() < 0.5:
        info["block"] = rng.integers(0, 9, size=(2, 2)).astype(np.int8)
    return info


@pytest.mark.parametrize("seed", range(20))
def test_merged_infos_are_what_gymnasium_builds_for_the_whole_batch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(size) for size in rng.integers(1, 4, size=3)]
    num_envs = sum(sizes)
    env_infos = [_env_info(rng, index) for index in range(num_envs)]
    bounds = []
    shard_infos = []
    start = 0
    for size in sizes:
        bounds.append((start, start + size))
        shard_infos.append(_vector_info(env_infos[start : start + size]))
        start += size
    merged = merge_infos(shard_infos, bounds, num_envs)
    assert_equivalent(merged, _vector_info(env_infos), "merged info")


# --- a sharded batch is the same batch on one server ---------------------------------------

CASES = [
    pytest.param(CARTPOLE, "sync", {"max_episode_steps": 25}, id="CartPole-sync"),
    pytest.param(
        TURBOFAN,
        "vector_entry_point",
        {"step_size": 5, "max_episode_steps": 40},
        id="Turbofan-native",
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("env_id", "vectorization", "options"), CASES)
def test_sharded_batch_equals_one_server(  # noqa: PLR0917 - fixtures and parameters
    servers: list[Running],
    reference: Running,
    env_id: str,
    vectorization: str,
    options: dict[str, Any],
    mode: AutoresetMode,
) -> None:
    env = sharded(servers, env_id, mode, vectorization_mode=vectorization, **options)
    with Lockstep(
        env, remote_env(reference.target, env_id, NUM_ENVS, mode, vectorization, **options)
    ) as lockstep:
        events = lockstep.run(STEPS, seed=2024)
        sessions = [server_session(s, shard) for s, shard in zip(servers, env.shards, strict=True)]
        # Three shards of 3, 2 and 2, each stepped every time.
        assert [session.steps_taken for session in sessions] == [3 * STEPS, 2 * STEPS, 2 * STEPS]
    assert events["terminated"] > 0
    assert events["truncated"] > 0
    assert events["partial resets"] > 0


def test_nested_infos_step_async_and_the_first_seed(
    servers: list[Running], reference: Running
) -> None:
    """DictObs: Dict observations, nested infos, keys only some envs report; step_async."""
    options: dict[str, Any] = {"horizon": 6, "end_probability": 0.2}
    remote = sharded(servers, DICT_OBS, AutoresetMode.SAME_STEP, seed=11, **options)
    local = gymrpc.make_vec(
        DICT_OBS, NUM_ENVS, target=reference.target, autoreset_mode="SameStep", seed=11,
        vectorization_mode="sync", **options,
    )  # fmt: skip
    with Lockstep(remote, local) as lockstep:
        lockstep.seed_actions(11)
        # make_vec's seed is the first reset's: sub-environment i gets 11 + i.
        lockstep.reset()
        causes = 0
        for _ in range(40):
            actions = remote.action_space.sample()
            assert_equivalent(actions, local.action_space.sample(), "actions")
            remote.step_async(actions)
            local.step_async(actions)
            got, want = remote.step_wait(), local.step_wait()
            assert_equivalent(got, want, "step")
            causes += int(got[4].get("final_info", {}).get("_cause", np.zeros(1)).sum())
        assert causes > 0, "no episode terminated: pick other options"


def test_partial_resets_reach_only_the_shards_concerned(servers: list[Running]) -> None:
    with sharded(servers, CARTPOLE) as env:
        observations, _ = env.reset(seed=0)
        sessions = [server_session(s, shard) for s, shard in zip(servers, env.shards, strict=True)]
        before = [session.sequence.last_sequence for session in sessions]
        mask = np.zeros(NUM_ENVS, dtype=np.bool_)
        mask[[1, 6]] = True  # shard 0 (0..2) and shard 2 (5..6)
        seeds: list[int | None] = [None, 101, None, None, None, None, 106]
        again, info = env.reset(seed=seeds, options={"reset_mask": mask})
        after = [session.sequence.last_sequence for session in sessions]
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 0, 1]
        # The others keep their observations; the info covers the reset ones only.
        assert_equivalent(again[~mask], observations[~mask], "kept observations")
        for key, value in info.items():
            if key.startswith("_"):
                assert_equivalent(value, mask, f"mask {key}")
        one = gym.make(CARTPOLE)
        assert_equivalent(again[6], one.reset(seed=106)[0], "sub-environment 6 seeded 106")


def test_seeds_that_overflow_are_refused_before_any_shard_resets(
    servers: list[Running],
) -> None:
    with sharded(servers, CARTPOLE) as env:
        env.reset(seed=0)
        with pytest.raises(InvalidSeedError, match="does not fit in 64 bits"):
            env.reset(seed=2**64 - 3)
        # Nothing was sent: the batch steps on.
        env.step(env.action_space.sample())


def test_call_get_attr_and_set_attr_fan_out_with_global_indices(
    servers: list[Running], reference: Running
) -> None:
    options: dict[str, Any] = {"horizon": 9, "end_probability": 0.1}
    remote = sharded(servers, DICT_OBS, **options)
    local = gymrpc.make_vec(
        DICT_OBS, NUM_ENVS, target=reference.target, vectorization_mode="sync", **options
    )
    with remote, local:
        for env in (remote, local):
            env.set_attr("end_probability", [0.5, 0.25, 0.125], env_indices=[6, 0, 3])
            env.set_attr("horizon", 4, env_indices=[5, 2])
        for indices in (None, [6, 0, 3, 3], [4]):
            for name in ("end_probability", "horizon"):
                got = remote.get_attr(name, indices)
                assert_equivalent(got, local.get_attr(name, indices), f"{name} at {indices}")
        assert remote.get_attr("end_probability", [6, 0, 3]) == (0.5, 0.25, 0.125)
        got = remote.call_at([5, 1, 6], "get_wrapper_attr", "horizon")
        assert got == local.call_at([5, 1, 6], "get_wrapper_attr", "horizon") == (4, 9, 9)
        assert remote.call("get_wrapper_attr", "horizon") == local.call(
            "get_wrapper_attr", "horizon"
        )
        with pytest.raises(InvalidArgumentError, match=r"env_indices: \[7\]") as error:
            remote.get_attr("horizon", [1, 7])
        assert error.value.field == "env_indices"
        with pytest.raises(ValueError, match="Got `2` values for 3 environments"):
            remote.set_attr("horizon", [1, 2], env_indices=[0, 4, 6])


def test_render_joins_every_shards_frames(servers: list[Running], reference: Running) -> None:
    remote = sharded(servers, DICT_OBS, render_mode="rgb_array")
    local = gymrpc.make_vec(
        DICT_OBS, NUM_ENVS, target=reference.target, vectorization_mode="sync",
        render_mode="rgb_array",
    )  # fmt: skip
    with remote, local:
        remote.reset(seed=1)
        local.reset(seed=1)
        actions = remote.action_space.sample()
        remote.step(actions)
        local.step(actions)
        frames = remote.render()
        assert len(frames) == NUM_ENVS
        assert_equivalent(frames, local.render(), "frames")
        assert_equivalent(remote.render([6, 0, 4]), local.render([6, 0, 4]), "some frames")


def test_the_sb3_adapter_runs_on_a_sharded_batch(
    servers: list[Running], reference: Running
) -> None:
    sb3 = pytest.importorskip("gymrpc.sb3")
    targets = [server.target for server in servers]
    with ExitStack() as stack:
        remote = sb3.RemoteVecEnv(CARTPOLE, NUM_ENVS, target=targets, vectorization_mode="sync")
        local = sb3.RemoteVecEnv(
            CARTPOLE, NUM_ENVS, target=reference.target, vectorization_mode="sync"
        )
        stack.callback(remote.close)
        stack.callback(local.close)
        assert isinstance(remote.remote, ShardedVectorEnv)
        for env in (remote, local):
            env.seed(5)
        assert_equivalent(remote.reset(), local.reset(), "reset")
        rng = np.random.default_rng(5)
        dones = 0
        for _ in range(60):
            actions = rng.integers(0, 2, size=NUM_ENVS)
            got, want = remote.step(actions), local.step(actions)
            assert_equivalent(got, want, "step")
            dones += int(got[2].sum())
        assert dones > 0
        # An existing sharded batch is accepted as it is, as a RemoteVectorEnv is.
        existing = sharded(servers, CARTPOLE, AutoresetMode.SAME_STEP, num_envs=4)
        adapter = sb3.RemoteVecEnv(existing)
        stack.callback(adapter.close)
        assert adapter.reset().shape == (4, 4)


# --- make_vec's targets ----------------------------------------------------------------------


def test_make_vec_spreads_over_targets_in_every_form(
    servers: list[Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = [server.target for server in servers]
    port = servers[0].port
    monkeypatch.setenv("GYMRPC_TARGET", ",".join(targets))
    with gymrpc.make_vec(CARTPOLE, 6) as env:
        assert isinstance(env, ShardedVectorEnv)
        assert env.targets == tuple(targets)
        assert [s.env_indices for s in env.shard_stats()] == [range(2), range(2, 4), range(4, 6)]
    with gymrpc.make_vec(CARTPOLE, 8, target=f"dns:///localhost:{port},{targets[1]}") as env:
        assert isinstance(env, ShardedVectorEnv)
        assert env.targets == (f"127.0.0.1:{port}", targets[1])
    with gymrpc.make_vec(CARTPOLE, 8, target=targets[:2], shard_weights=[3, 1]) as env:
        assert isinstance(env, ShardedVectorEnv)
        assert [s.env_indices for s in env.shard_stats()] == [range(6), range(6, 8)]
    # A batch smaller than the list of servers uses the first ones; one server, no shards.
    with gymrpc.make_vec(CARTPOLE, 2, target=targets) as env:
        assert isinstance(env, ShardedVectorEnv)
        assert env.targets == tuple(targets[:2])
    with gymrpc.make_vec(CARTPOLE, 1, target=targets) as env:
        assert type(env) is gymrpc.RemoteVectorEnv
        assert server_session(servers[0], env).num_envs == 1
    with gymrpc.make_vec(CARTPOLE, 3, target=targets[0]) as env:
        assert type(env) is gymrpc.RemoteVectorEnv


# --- faults ---------------------------------------------------------------------------------


def test_a_failing_shard_names_its_server_and_the_batch_must_be_reset(
    servers: list[Running],
) -> None:
    with sharded(servers, CARTPOLE) as env:
        env.reset(seed=3)
        actions = np.zeros(NUM_ENVS, dtype=np.int64)
        actions[5] = 7  # sub-environment 5 is shard 2's sub-environment 0
        with pytest.raises(InvalidActionError) as refused:
            env.step(actions)
        assert servers[2].target in str(refused.value)
        assert refused.value.field == "step.actions[5]"
        assert refused.value.metadata["target"] == servers[2].target
        # Shards 0 and 1 stepped: the batch is out of step until it is reset as a whole.
        with pytest.raises(ResetNeededError, match=re.escape(servers[2].target)):
            env.step(np.zeros(NUM_ENVS, dtype=np.int64))
        with pytest.raises(ResetNeededError):
            env.reset(options={"reset_mask": np.eye(NUM_ENVS, dtype=np.bool_)[0]})
        env.reset(seed=3)
        env.step(np.zeros(NUM_ENVS, dtype=np.int64))
        # A refusal every shard shares leaves the batch in step.
        with pytest.raises(TypeError):
            env.step(0)
        env.step(np.zeros(NUM_ENVS, dtype=np.int64))


def test_an_environment_failure_in_one_shard_is_typed_and_located(
    servers: list[Running],
) -> None:
    with sharded(servers, "gymrpc-test/Faulty-v0") as env:
        env.reset(seed=0)
        actions = np.zeros(NUM_ENVS, dtype=np.int64)
        actions[4] = 1  # crashes shard 1's simulator
        with pytest.raises(EnvironmentFailureError, match="the simulator crashed") as failure:
            env.step(actions)
        assert failure.value.metadata["shard"] == "1"
        assert f"shard 1 of 3 at {servers[1].target}" in str(failure.value)
        env.reset(seed=0)
        env.step(np.zeros(NUM_ENVS, dtype=np.int64))
    # close() after a failure closes every shard's session.
    assert open_sessions(*servers) == [0, 0, 0]


def test_a_dropped_link_reattaches_and_the_batch_goes_on(
    servers: list[Running], reference: Running
) -> None:
    options: dict[str, Any] = {"horizon": 200, "end_probability": 0.05}
    with ExitStack() as stack:
        proxy = stack.enter_context(TcpProxy(servers[1].port))
        remote = gymrpc.make_vec(
            DICT_OBS, NUM_ENVS, target=[servers[0].target, proxy.target, servers[2].target],
            vectorization_mode="sync", timeout=30, **options,
        )  # fmt: skip
        local = remote_env(reference.target, DICT_OBS, NUM_ENVS, **options)
        lockstep = stack.enter_context(Lockstep(remote, local))
        lockstep.reset(seed=9)
        accepted = proxy.accepted
        for _ in range(5):
            assert proxy.cut() == 1
            lockstep.step()
        assert proxy.accepted >= accepted + 5
        assert not remote.closed


def test_a_killed_server_ends_the_batch_with_connection_lost(
    servers: list[Running], reference: Running
) -> None:
    with ServerProcess() as killed:
        env = gymrpc.make_vec(
            CARTPOLE, NUM_ENVS, target=[servers[0].target, killed.target, servers[1].target],
            timeout=30,
        )  # fmt: skip
        env.reset(seed=0)
        env.step(env.action_space.sample())
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(30)
        with pytest.raises(ConnectionLostError, match=re.escape(killed.target)) as lost:
            env.step(env.action_space.sample())
        assert "the batch is closed" in str(lost.value)
        assert env.closed
        # The servers still up freed their shards' sessions.
        assert open_sessions(servers[0], servers[1]) == [0, 0]


def test_close_closes_every_shards_session(servers: list[Running]) -> None:
    env = sharded(servers, TURBOFAN, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    assert open_sessions(*servers) == [1, 1, 1]
    env.step(env.action_space.sample())
    env.close()
    env.close()  # idempotent
    assert open_sessions(*servers) == [0, 0, 0]
    with pytest.raises(gym.error.ClosedEnvironmentError):
        env.step(env.action_space.sample())


def test_a_failed_creation_closes_the_sessions_already_made(servers: list[Running]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:  # a port nobody listens on after
        nowhere = f"127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(UnavailableError, match=re.escape(nowhere)):
        gymrpc.make_vec(CARTPOLE, 4, target=[servers[0].target, nowhere], timeout=5)
    assert open_sessions(servers[0]) == [0]


def test_shard_stats_report_each_servers_steps(servers: list[Running]) -> None:
    with sharded(servers, CARTPOLE, seed=0) as env:
        stats = env.shard_stats()
        assert [s.steps for s in stats] == [0, 0, 0]
        assert all(np.isnan(s.mean_step_seconds) for s in stats)
        env.reset()
        for _ in range(12):
            env.step(env.action_space.sample())
        stats = env.shard_stats()
    assert [s.target for s in stats] == [server.target for server in servers]
    assert [s.session_id for s in stats] == list(env.session_ids)
    assert [s.steps for s in stats] == [12, 12, 12]
    for s in stats:
        assert s.last_step_seconds > 0
        assert 0 < s.mean_step_seconds <= s.p99_step_seconds * (1 + 1e-9)


def test_results_are_new_arrays_that_the_caller_may_change(servers: list[Running]) -> None:
    with sharded(servers, CARTPOLE, seed=0) as env:
        env.reset()
        observations, *_ = env.step(env.action_space.sample())
        kept = observations.copy()
        observations += 100.0  # the caller's array: the batch keeps its own
        again, _ = env.reset(options={"reset_mask": np.eye(NUM_ENVS, dtype=np.bool_)[0]})
        assert not np.shares_memory(observations, again)
        assert_equivalent(again[1:], kept[1:], "observations of the envs not reset")
        assert not data_equivalence(again[0], kept[0])


def test_np_random_seed_and_evaluation_of_a_sharded_batch(serve: Serve) -> None:
    first, second = serve(), serve()
    with gymrpc.make_vec(
        "CartPole-v1", 3, target=[first.target, second.target], vectorization_mode="sync"
    ) as envs:
        # Before the first reset each server reports its environments' seeds (drawn
        # from entropy when asked, as locally): one tuple in sub-environment order.
        unseeded = envs.np_random_seed
        assert isinstance(unseeded, tuple)
        assert len(unseeded) == 3
        assert all(isinstance(seed, int) and seed >= 0 for seed in unseeded)
        assert envs.np_random_seed == unseeded
        envs.reset(seed=42)
        # Sub-environment i gets seed + i whatever its server: the tuples join.
        assert envs.np_random_seed == (42, 43, 44)
        assert envs.evaluation is False
