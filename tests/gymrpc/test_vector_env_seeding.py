"""A remote batch is seeded as SyncVectorEnv is, before its first reset too.

``SyncVectorEnv`` batches its first environment's spaces with ``batch_space``, which
copies each (sub-)space's random generator: an environment that seeded its spaces (as
Gymnasium's tests' ``make_env`` does) makes ``envs.action_space.sample()``
reproducible. Its ``np_random_seed`` reads the sub-environments' seeds at any time,
drawing fresh ones for environments not seeded yet. Here a remote batch run by the
server's ``SyncVectorEnv`` must sample, and report seeds, exactly as a local one does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.spaces import GraphInstance
from gymnasium.vector import SyncVectorEnv
from gymrpc_testing import Running, Serve
from vector_reference import assert_equivalent

import gymrpc
from gymrpc.sharding import ShardedVectorEnv

SEEDED_SPACES = "gymrpc-seeding/SeededSpaces-v0"
NUM_ENVS = 3


class SeededSpacesEnv(gym.Env[dict[str, Any], dict[str, Any]]):
    """Seeds itself and its spaces when built, as Gymnasium's tests' ``make_env`` does.

    Its spaces nest generators at every level: Dicts, a Tuple, a OneOf, a Text and a
    Graph with Dict node features each have their own.

    Args:
        env_seed: ``reset(seed=env_seed)`` when built; None leaves it unseeded.
        space_seed: Seed of the action space (and, plus one, of the observation
            space) when built; None leaves them unseeded.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self, env_seed: int | None = 5, space_seed: int | None = 7) -> None:
        self.observation_space = spaces.Dict(
            {
                "position": spaces.Box(-1.0, 1.0, (2,), np.float32),
                "graph": spaces.Graph(spaces.Dict({"on": spaces.MultiBinary(2)}), None),
            }
        )
        self.action_space = spaces.Dict(
            {
                "move": spaces.Discrete(4),
                "force": spaces.Box(-1.0, 1.0, (2,), np.float32),
                "say": spaces.Text(3, charset="ab"),
                "pick": spaces.Tuple(
                    (
                        spaces.MultiDiscrete([2, 3]),
                        spaces.OneOf((spaces.Discrete(2), spaces.MultiBinary(2))),
                    )
                ),
            }
        )
        if space_seed is not None:
            self.action_space.seed(space_seed)
            self.observation_space.seed(space_seed + 1)
        if env_seed is not None:
            super().reset(seed=env_seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        return self._observe(), {}

    def step(
        self, action: dict[str, Any]
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        return self._observe(), 0.0, False, False, {}

    def _observe(self) -> dict[str, Any]:
        nodes = {"on": self.np_random.integers(0, 2, (3, 2), dtype=np.int8)}
        return {
            "graph": GraphInstance(nodes, None, None),
            "position": self.np_random.uniform(-1, 1, 2).astype(np.float32),
        }


if SEEDED_SPACES not in gym.registry:
    # The servers of the serve fixture run in this process, so they see it.
    entry_point: Any = SeededSpacesEnv
    gym.register(SEEDED_SPACES, entry_point=entry_point, disable_env_checker=True)


@pytest.fixture
def made() -> Iterator[list[gym.vector.VectorEnv[Any, Any, Any]]]:
    """Vector environments to close after the test."""
    envs: list[gym.vector.VectorEnv[Any, Any, Any]] = []
    yield envs
    for env in envs:
        env.close()


def sync(
    made: list[gym.vector.VectorEnv[Any, Any, Any]], env_id: str, **options: Any
) -> SyncVectorEnv:
    """The reference: SyncVectorEnv over NUM_ENVS copies, built locally."""
    reference = SyncVectorEnv([lambda: gym.make(env_id, **options)] * NUM_ENVS)
    made.append(reference)
    return reference


def remote(
    made: list[gym.vector.VectorEnv[Any, Any, Any]],
    target: str | list[str],
    env_id: str,
    vectorization: str = "sync",
    **options: Any,
) -> gymrpc.RemoteVectorEnv:
    """The same batch on servers (``make_vec``: one session per target)."""
    made.append(
        gymrpc.make_vec(
            env_id, NUM_ENVS, target=target, vectorization_mode=vectorization, **options
        )
    )
    return made[-1]  # type: ignore[return-value]


def rng_state(space: spaces.Space[Any]) -> Any:
    return space.np_random.bit_generator.state


# --- the batched spaces continue the environment's generators ------------------------------


def test_batched_spaces_sample_as_sync_vector_envs_do(
    serve: Serve, made: list[gym.vector.VectorEnv[Any, Any, Any]]
) -> None:
    reference = sync(made, SEEDED_SPACES)
    # Two batches built alike, on two servers: each samples what the reference does.
    batches = [remote(made, serve().target, SEEDED_SPACES) for _ in range(2)]
    for envs in batches:
        # Gymnasium's test_sync_vector_determinism compares the generators themselves.
        assert rng_state(envs.action_space) == rng_state(reference.action_space)
        assert rng_state(envs.observation_space) == rng_state(reference.observation_space)
    for _ in range(20):
        want = reference.action_space.sample()
        for envs in batches:
            assert_equivalent(envs.action_space.sample(), want, "batched actions")
        want = reference.observation_space.sample()
        for envs in batches:
            assert_equivalent(envs.observation_space.sample(), want, "batched observations")
        # The single spaces are sub-environment 0's: the same stream as its own space.
        want = reference.single_action_space.sample()
        for envs in batches:
            assert_equivalent(envs.single_action_space.sample(), want, "single actions")


def test_sampled_actions_step_the_same_batches(
    running: Running, made: list[gym.vector.VectorEnv[Any, Any, Any]]
) -> None:
    reference = sync(made, SEEDED_SPACES)
    envs = remote(made, running.target, SEEDED_SPACES)
    assert_equivalent(envs.reset(seed=3), reference.reset(seed=3), "reset")
    for _ in range(5):
        actions = envs.action_space.sample()
        assert_equivalent(actions, reference.action_space.sample(), "actions")
        assert_equivalent(envs.step(actions), reference.step(actions), "step")


def test_a_sharded_batch_samples_as_one_sync_vector_env(
    serve: Serve, made: list[gym.vector.VectorEnv[Any, Any, Any]]
) -> None:
    reference = sync(made, SEEDED_SPACES)
    envs = remote(made, [serve().target, serve().target], SEEDED_SPACES)
    assert isinstance(envs, ShardedVectorEnv)
    for _ in range(10):
        assert_equivalent(envs.action_space.sample(), reference.action_space.sample(), "actions")


def test_make_vecs_seed_still_reseeds_the_action_space(
    running: Running, made: list[gym.vector.VectorEnv[Any, Any, Any]]
) -> None:
    reference = sync(made, SEEDED_SPACES)
    reference.action_space.seed(11)
    envs = remote(made, running.target, SEEDED_SPACES, seed=11)
    for _ in range(5):
        assert_equivalent(envs.action_space.sample(), reference.action_space.sample(), "actions")


# --- np_random_seed before the first reset ---------------------------------------------------


@pytest.mark.parametrize("env_seed", [5, 0])
def test_np_random_seed_before_the_first_reset_reports_the_environments_seeds(
    running: Running, made: list[gym.vector.VectorEnv[Any, Any, Any]], env_seed: int
) -> None:
    reference = sync(made, SEEDED_SPACES, env_seed=env_seed)
    envs = remote(made, running.target, SEEDED_SPACES, env_seed=env_seed)
    assert envs.np_random_seed == reference.np_random_seed == (env_seed,) * NUM_ENVS
    # Fresh generators from those seeds, as the environments' own before they draw.
    assert [g.bit_generator.state for g in envs.np_random] == [
        g.bit_generator.state for g in reference.np_random
    ]
    # A first reset without a seed continues them, here as locally.
    assert_equivalent(envs.reset(), reference.reset(), "reset")
    assert envs.np_random_seed == reference.np_random_seed


@pytest.mark.parametrize("vectorization", ["sync", "vector_entry_point"])
def test_unseeded_environments_report_the_seeds_they_then_use(
    running: Running, made: list[gym.vector.VectorEnv[Any, Any, Any]], vectorization: str
) -> None:
    envs = remote(made, running.target, "CartPole-v1", vectorization)
    # Drawn from entropy when first asked, on the server, as locally; then kept.
    seeds = envs.np_random_seed
    assert envs.np_random_seed == seeds
    reference = gym.make_vec("CartPole-v1", NUM_ENVS, vectorization_mode=vectorization)
    made.append(reference)
    if vectorization == "sync":
        assert isinstance(seeds, tuple)
        assert len(seeds) == NUM_ENVS
        assert len(set(seeds)) == NUM_ENVS
        local_seed: Any = list(seeds)
    else:
        assert isinstance(seeds, int)
        local_seed = seeds
    assert all(seed >= 0 for seed in np.atleast_1d(np.asarray(seeds, dtype=object)))
    # The environments reset with exactly those seeds.
    assert_equivalent(envs.reset(), reference.reset(seed=local_seed), "reset")
    assert envs.np_random_seed == seeds


def test_a_sharded_batch_joins_its_shards_seeds_before_the_first_reset(
    serve: Serve, made: list[gym.vector.VectorEnv[Any, Any, Any]]
) -> None:
    reference = sync(made, SEEDED_SPACES, env_seed=9)
    envs = remote(made, [serve().target, serve().target], SEEDED_SPACES, env_seed=9)
    assert isinstance(envs, ShardedVectorEnv)
    assert envs.np_random_seed == reference.np_random_seed == (9,) * NUM_ENVS
    assert_equivalent(envs.reset(), reference.reset(), "reset")


def test_attaching_to_a_session_reads_its_seeds(
    running: Running, made: list[gym.vector.VectorEnv[Any, Any, Any]]
) -> None:
    envs = remote(made, running.target, SEEDED_SPACES, env_seed=4)
    attached = gymrpc.RemoteVectorEnv(
        SEEDED_SPACES, target=running.target, session_id=envs.session_id
    )
    try:
        assert attached.np_random_seed == (4,) * NUM_ENVS
        assert attached.np_random_seed == envs.np_random_seed
    finally:
        attached.close()  # closes the session: envs' own close then tolerates its absence
