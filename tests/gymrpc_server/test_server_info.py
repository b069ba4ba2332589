"""Handshake and catalogue against a real server."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymrpc_testing import Running, Serve

import gymrpc_server
from gymrpc.protocol import PROTOCOL_VERSION
from gymrpc.spaces import decode_space
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import decode_value


def test_server_info_reports_versions_capabilities_limits_and_caller(serve: Serve) -> None:
    running = serve(max_num_envs=128, step_quota=1000, session_idle_timeout=90.5)
    info = running.stub().GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
    assert info.server_version == gymrpc_server.__version__
    assert (info.protocol_version.major, info.protocol_version.minor) == PROTOCOL_VERSION
    assert {"stream", "unary_step", "idempotent_retry"} <= set(info.capabilities)
    assert "auth" not in info.capabilities
    assert info.limits.max_num_envs == 128
    assert info.limits.step_quota == 1000
    assert info.limits.session_idle_timeout.seconds == 90
    assert info.limits.session_idle_timeout.nanos == 500_000_000
    assert info.limits.max_message_bytes == running.server.config.max_message_bytes
    assert (info.identity.user, info.identity.role) == ("anonymous", pb.ROLE_USER)
    assert info.usage.open_sessions == 0


def test_catalogue_lists_servable_environments_with_spaces(running: Running) -> None:
    catalogue = running.stub().ListEnvironments(pb.ListEnvironmentsRequest(), timeout=60)
    by_id = {env.env_id: env for env in catalogue.environments}
    assert [env.env_id for env in catalogue.environments] == sorted(by_id)
    for env_id in ("CartPole-v1", "Pendulum-v1", "gymrpc/Turbofan-v0", "gymrpc-test/DictObs-v0"):
        assert env_id in by_id
    # Environments whose dependencies are missing, or whose spaces protocol v1 cannot
    # describe, are not listed.
    assert "gymrpc-test/CustomSpace-v0" not in by_id
    cartpole = by_id["CartPole-v1"]
    local = gym.make("CartPole-v1")
    assert decode_space(cartpole.single_observation_space) == local.observation_space
    assert decode_space(cartpole.single_action_space) == local.action_space
    assert cartpole.native_vector
    assert cartpole.max_episode_steps == 500
    assert set(cartpole.autoreset_modes) == {
        pb.AUTORESET_MODE_NEXT_STEP,
        pb.AUTORESET_MODE_SAME_STEP,
        pb.AUTORESET_MODE_DISABLED,
    }
    metadata = {entry.key: decode_value(entry.value) for entry in cartpole.metadata.entries}
    assert metadata["render_fps"] == 50
    assert "autoreset_mode" not in metadata


def test_catalogue_describes_options_with_types_and_defaults(running: Running) -> None:
    catalogue = running.stub().ListEnvironments(pb.ListEnvironmentsRequest(), timeout=60)
    turbofan = next(e for e in catalogue.environments if e.env_id == "gymrpc/Turbofan-v0")
    options = {option.name: option for option in turbofan.options}
    assert options["step_size"].type == pb.OPTION_TYPE_INT
    assert decode_value(options["step_size"].default_value) == 10
    assert options["max_episode_steps"].type == pb.OPTION_TYPE_INT
    assert options["expose_hidden_state"].type == pb.OPTION_TYPE_BOOL
    assert options["expose_hidden_state"].privileged
    assert not options["step_size"].privileged
    assert turbofan.native_vector
    box = decode_space(turbofan.single_observation_space)
    assert box.shape == (10, 9)
    assert box.dtype == np.float32
    pendulum = next(e for e in catalogue.environments if e.env_id == "Pendulum-v1")
    g = next(option for option in pendulum.options if option.name == "g")
    # No annotation: the type comes from the default.
    assert g.type == pb.OPTION_TYPE_FLOAT
    assert decode_value(g.default_value) == 10.0


def test_allow_list_restricts_the_catalogue(serve: Serve) -> None:
    running = serve(allowed_env_ids=frozenset({"CartPole-v1"}))
    catalogue = running.stub().ListEnvironments(pb.ListEnvironmentsRequest(), timeout=60)
    assert [env.env_id for env in catalogue.environments] == ["CartPole-v1"]
