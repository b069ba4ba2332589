"""dm_env_rpc as a benchmark peer: Gymnasium's CartPole served through its protocol.

dm_env_rpc (DeepMind) is the closest networked peer of gymrpc: one bidirectional
stream per connection and one world per stream, so its users vectorize by opening N
streams and stepping N worlds in turn. This module holds a small dm_env_rpc server for
any Gymnasium environment with a Discrete action and a Box observation, and the
client loop the benchmark times, which uses dm_env_rpc's own Python client
(``Connection`` and ``DmEnvAdaptor``). Run as a script, it serves on a given port.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import gymnasium as gym
import numpy as np
from dm_env_rpc.v1 import (
    connection,
    dm_env_adaptor,
    dm_env_rpc_pb2,
    dm_env_rpc_pb2_grpc,
    tensor_utils,
)

_ACTION, _OBSERVATION, _REWARD, _DISCOUNT = 1, 1, 2, 3


def _specs(env: gym.Env[Any, Any]) -> dm_env_rpc_pb2.ActionObservationSpecs:
    specs = dm_env_rpc_pb2.ActionObservationSpecs()
    action = specs.actions[_ACTION]
    action.name = "action"
    action.dtype = dm_env_rpc_pb2.INT64
    action.min.int64s.array.append(0)
    action.max.int64s.array.append(int(env.action_space.n) - 1)  # type: ignore[attr-defined]
    observation = specs.observations[_OBSERVATION]
    observation.name = "observation"
    observation.dtype = dm_env_rpc_pb2.FLOAT
    observation.shape.extend(env.observation_space.shape or ())
    for uid, name in ((_REWARD, "reward"), (_DISCOUNT, "discount")):
        specs.observations[uid].name = name
        specs.observations[uid].dtype = dm_env_rpc_pb2.DOUBLE
    return specs


class _Servicer(dm_env_rpc_pb2_grpc.EnvironmentServicer):  # type: ignore[misc]
    """One Gymnasium environment per stream, as dm_env_rpc's examples do."""

    def __init__(self, env_id: str) -> None:
        self._env_id = env_id

    def Process(  # noqa: N802 - the protocol's name
        self, request_iterator: Iterator[dm_env_rpc_pb2.EnvironmentRequest], context: Any
    ) -> Iterator[dm_env_rpc_pb2.EnvironmentResponse]:
        env: gym.Env[Any, Any] | None = None
        observation: Any = None
        for request in request_iterator:
            response = dm_env_rpc_pb2.EnvironmentResponse()
            kind = request.WhichOneof("payload")
            if kind == "create_world":
                env = gym.make(self._env_id)
                response.create_world.world_name = "world"
            elif kind == "join_world":
                assert env is not None
                response.join_world.specs.CopyFrom(_specs(env))
            elif kind in ("reset", "reset_world"):
                assert env is not None
                observation, _ = env.reset()
                getattr(response, kind).SetInParent()
                if kind == "reset":
                    response.reset.specs.CopyFrom(_specs(env))
            elif kind == "step":
                assert env is not None
                step = response.step
                if observation is None:  # first step of an episode: report the start
                    observation, _ = env.reset()
                    reward, done = 0.0, False
                elif _ACTION not in request.step.actions:  # dm_env's reset(): no action
                    reward, done = 0.0, False
                else:
                    action = tensor_utils.unpack_tensor(request.step.actions[_ACTION])
                    observation, raw_reward, terminated, truncated, _ = env.step(int(action))
                    reward = float(raw_reward)
                    done = terminated or truncated
                step.observations[_OBSERVATION].CopyFrom(tensor_utils.pack_tensor(observation))
                step.observations[_REWARD].CopyFrom(tensor_utils.pack_tensor(float(reward)))
                step.observations[_DISCOUNT].CopyFrom(
                    tensor_utils.pack_tensor(0.0 if done else 1.0)
                )
                step.state = (
                    dm_env_rpc_pb2.EnvironmentStateType.TERMINATED
                    if done
                    else dm_env_rpc_pb2.EnvironmentStateType.RUNNING
                )
                if done:
                    observation = None
            elif kind in ("leave_world", "destroy_world"):
                getattr(response, kind).SetInParent()
            yield response


def serve(port: int, env_id: str) -> grpc.Server:
    """Start a dm_env_rpc server for ``env_id`` on 127.0.0.1:port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1100))
    dm_env_rpc_pb2_grpc.add_EnvironmentServicer_to_server(_Servicer(env_id), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(bound, flush=True)
    return server


class Worlds:
    """N dm_env_rpc worlds, one stream each, stepped in turn with dm_env_rpc's client."""

    def __init__(self, target: str, num_envs: int) -> None:
        self._channels = [grpc.insecure_channel(target) for _ in range(num_envs)]
        self._connections = [connection.Connection(channel) for channel in self._channels]
        self.envs = []
        for conn in self._connections:
            conn.send(dm_env_rpc_pb2.CreateWorldRequest())
            specs = conn.send(dm_env_rpc_pb2.JoinWorldRequest(world_name="world")).specs
            self.envs.append(dm_env_adaptor.DmEnvAdaptor(conn, specs, nested_tensors=False))
        for env in self.envs:
            env.reset()

    def step(self, actions: np.ndarray[Any, Any]) -> None:
        """Step every world once (dm_env resets a world after its last step)."""
        for env, action in zip(self.envs, actions, strict=True):
            env.step({"action": action})

    def close(self) -> None:
        """Close streams and channels."""
        for conn in self._connections:
            conn.close()
        for channel in self._channels:
            channel.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--env-id", default="CartPole-v1")
    arguments = parser.parse_args()
    serve(arguments.port, arguments.env_id).wait_for_termination()
    sys.exit(0)
