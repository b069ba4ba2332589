"""``gymrpc.ray``: gymrpc servers as actors of a real local Ray cluster.

One cluster serves the whole module: starting Ray is the expensive part.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from typing import Any, cast

import grpc
import numpy as np
import pytest
import ray as ray_module
from grpc_health.v1 import health_pb2, health_pb2_grpc

import gymrpc
from gymrpc.ray import ClusterStartError, start_servers, target_for_worker
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc

# Some of Ray's functions carry no annotations: checked here by what they return.
ray: Any = ray_module
SERVER_ARGS = ["--database", "none", "--allow-env", "CartPole-v1", "--grace-period", "1"]


@pytest.fixture(scope="module")
def cluster_cpus() -> Iterator[float]:
    """A local Ray cluster with two CPUs: room for two servers of one CPU each."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield float(ray.cluster_resources()["CPU"])
    finally:
        ray.shutdown()


def cpus_freed(expected: float) -> bool:
    """Whether every CPU is free again; Ray frees a removed placement group's in a moment."""
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0.0) != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def server_info(target: str, token: str | None) -> pb.GetServerInfoResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(target) as channel:
        return pb_grpc.EnvServiceStub(channel).GetServerInfo(
            pb.GetServerInfoRequest(), metadata=metadata, timeout=10
        )


def test_servers_on_the_cluster_serve_one_sharded_batch_and_stop(cluster_cpus: float) -> None:
    node_addresses = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
    with start_servers(2, cpus_per_server=1, server_args=SERVER_ARGS) as cluster:
        assert len(cluster.targets) == 2
        assert len(set(cluster.targets)) == 2
        assert len(cluster.node_ids) == 2
        hosts = {target.rpartition(":")[0].strip("[]") for target in cluster.targets}
        assert hosts <= node_addresses  # each listens on its node's address, as Ray knows it
        loopback = all(ipaddress.ip_address(host).is_loopback for host in hosts)
        if loopback:
            assert cluster.token is None  # open, like gymrpc-server on 127.0.0.1
        else:
            # Reachable from the network: the cluster's token, and nothing else, opens it.
            assert cluster.token is not None
            assert len(cluster.token) >= 32
            with pytest.raises(grpc.RpcError) as refused:
                server_info(cluster.targets[0], None)
            assert cast(Any, refused.value).code() is grpc.StatusCode.UNAUTHENTICATED

        # SyncVectorEnv seeds each sub-environment alone: sharded or not, the same batch.
        env = gymrpc.make_vec(
            "CartPole-v1",
            6,
            target=list(cluster.targets),
            token=cluster.token,
            seed=0,
            vectorization_mode="sync",
            timeout=30,
        )
        assert isinstance(env, gymrpc.ShardedVectorEnv)
        assert env.targets == cluster.targets
        reference = gymrpc.make_vec(
            "CartPole-v1",
            6,
            target=cluster.targets[0],
            token=cluster.token,
            seed=0,
            vectorization_mode="sync",
            discover_workers=False,
            timeout=30,
        )
        observations, _ = env.reset()
        expected, _ = reference.reset()
        np.testing.assert_array_equal(observations, expected)
        for _ in range(10):
            actions = np.array([0, 1, 1, 0, 1, 0])
            step, want = env.step(actions), reference.step(actions)
            for got, wanted in zip(step[:4], want[:4], strict=True):
                np.testing.assert_array_equal(got, wanted)
        # Both servers served: each holds one shard's session.
        usage = [server_info(target, cluster.token).usage for target in cluster.targets]
        assert [u.open_sessions for u in usage] == [2, 1]  # the reference is on the first
        assert [u.steps_used for u in usage] == [3 * 10 + 6 * 10, 3 * 10]
        env.close()
        reference.close()
        targets = cluster.targets
    # Stopped: nothing answers any more, and the bundles are free again.
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            with pytest.raises(grpc.RpcError) as gone:
                cast(Any, health_pb2_grpc.HealthStub)(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert cast(Any, gone.value).code() is grpc.StatusCode.UNAVAILABLE
    assert cpus_freed(cluster_cpus)


def test_a_server_that_cannot_start_is_reported_and_its_bundles_freed(
    cluster_cpus: float,
) -> None:
    refusal = r"server 0 did not start: ValueError: --env-module 'no_such_module' cannot be"
    with pytest.raises(ClusterStartError, match=refusal):
        start_servers(1, server_args=[*SERVER_ARGS, "--env-module", "no_such_module"])
    assert cpus_freed(cluster_cpus)


def test_bad_arguments_are_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="--address is set by start_servers"):
        start_servers(1, server_args=["--address", "0.0.0.0:1"])
    with pytest.raises(ValueError, match="--workers is set by start_servers"):
        start_servers(1, server_args=["--workers=2"])
    with pytest.raises(ValueError, match="not valid gymrpc-server flags"):
        start_servers(1, server_args=["--max-num-envs", "many"])
    with pytest.raises(TypeError, match="list of flags"):
        start_servers(1, server_args="--database none")
    with pytest.raises(ValueError, match="num_servers"):
        start_servers(0)
    with pytest.raises(ValueError, match="strategy"):
        start_servers(1, strategy="EVERYWHERE")


def test_workers_are_spread_over_the_servers_in_turn() -> None:
    targets = ["a:1", "b:2", "c:3"]
    assert [target_for_worker(targets, index) for index in range(8)] == [
        "a:1",  # the local worker
        "a:1",
        "b:2",
        "c:3",
        "a:1",
        "b:2",
        "c:3",
        "a:1",
    ]
    with pytest.raises(ValueError, match="targets"):
        target_for_worker([], 1)
    with pytest.raises(ValueError, match="worker_index"):
        target_for_worker(targets, -1)
