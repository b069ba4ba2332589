"""Environments that use every Gymnasium space, registered when this module is imported.

Each ``gymrpc-space/<case>-v0`` observes and acts in the spaces of one entry of
:data:`SPACE_CASES`: Text, Sequence (stacked and not), Graph (with and without an edge
space, with node and edge features of any space) and OneOf, alone and nested three deep
inside Dict and Tuple, plus Dict and Tuple action spaces for the Stable-Baselines3
adapter. Servers load it with
``serve(env_modules=("gymrpc_test_envs", "gymrpc_space_envs"))``; tests import it to
build the same environments locally.

:func:`nested_spaces` draws spaces of every kind for property tests.

Everything is determined by the seed: observations are samples of the observation
space, which each reset seeds from the environment's generator; the reward digests the
action, so an action that changed on its way changes the reward; episodes terminate at
random and are truncated after :data:`MAX_EPISODE_STEPS` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from hypothesis import strategies as st

__all__ = ["MAX_EPISODE_STEPS", "SPACE_CASES", "SpaceEnv", "env_id", "nested_spaces"]

#: The step limit of every environment here (a truncation).
MAX_EPISODE_STEPS = 6

SpacePair = tuple[spaces.Space[Any], spaces.Space[Any]]


def _box(*shape: int, low: float = -1.0, high: float = 1.0) -> spaces.Box:
    return spaces.Box(low, high, shape, np.float32)


def _text() -> SpacePair:
    # Characters outside ASCII and outside the BMP, in an order that is not sorted.
    return spaces.Text(12, min_length=0, charset="ab cé€😀"), spaces.Text(4, charset="zyx")


def _sequence() -> SpacePair:
    return spaces.Sequence(_box(2)), spaces.Sequence(spaces.Discrete(3), stack=True)


def _stacked_sequence() -> SpacePair:
    observation = spaces.Sequence(
        spaces.Tuple((spaces.Discrete(4), spaces.Text(3, charset="ab"))), stack=True
    )
    action = spaces.Sequence(
        spaces.Dict({"id": spaces.Discrete(4), "weight": _box(2, low=0.0)}), stack=True
    )
    return observation, action


def _graph() -> SpacePair:
    return (
        spaces.Graph(_box(3), spaces.Discrete(4)),
        spaces.Graph(spaces.Discrete(5, start=-2), None),
    )


def _graph_features() -> SpacePair:
    # Node and edge features of any space (Gymnasium 1.4): MultiBinary, MultiDiscrete,
    # and Dicts and Tuples of them, of Text and of OneOf, nested three deep.
    observation = spaces.Tuple(
        (
            spaces.Graph(spaces.MultiBinary(3), spaces.MultiDiscrete([2, 3], start=[-1, 0])),
            spaces.Graph(
                spaces.Dict(
                    {"kind": spaces.Discrete(3), "bits": spaces.MultiBinary([2, 2])},
                    sort_keys=False,
                ),
                spaces.Tuple((spaces.MultiDiscrete([4]), spaces.Text(3, charset="gh"))),
            ),
        )
    )
    action = spaces.Dict(
        {
            "graph": spaces.Graph(
                spaces.Tuple(
                    (
                        spaces.Discrete(4),
                        spaces.Dict({"on": spaces.MultiBinary(2), "level": _box(1)}),
                    )
                ),
                spaces.Dict(
                    {
                        "weight": _box(1, low=0.0),
                        "tag": spaces.OneOf((spaces.Discrete(2), spaces.Text(2, charset="ud"))),
                    }
                ),
            ),
            "bits": spaces.MultiBinary(2),
        }
    )
    return observation, action


def _one_of() -> SpacePair:
    observation = spaces.OneOf((spaces.Discrete(3), _box(2, low=0.0), spaces.Text(5)))
    action = spaces.OneOf(
        (spaces.Discrete(2), spaces.MultiBinary(3), spaces.Graph(_box(2, low=0.0), None))
    )
    return observation, action


def _nested() -> SpacePair:
    # Keys deliberately unsorted (sort_keys=False): their order is part of the space.
    # Under a Dict observation, stacks of arrays would have different lengths in
    # different sub-environments, which SyncVectorEnv cannot put in SAME_STEP's
    # final_obs; they sit inside Tuples and OneOfs instead.
    observation = spaces.Dict(
        {
            "tuple": spaces.Tuple(
                (
                    spaces.Sequence(spaces.Graph(_box(2, low=0.0), None)),
                    spaces.OneOf(
                        (
                            spaces.Text(4),
                            spaces.Sequence(spaces.MultiDiscrete([2, 3]), stack=True),
                        )
                    ),
                )
            ),
            "graph": spaces.Graph(spaces.Discrete(3), _box(2, low=0.0)),
            "sequence": spaces.Sequence(
                spaces.OneOf((spaces.Discrete(2), spaces.Text(2, charset="pq"))), stack=True
            ),
            "box": _box(2),
        },
        sort_keys=False,
    )
    action = spaces.Tuple(
        (
            spaces.Dict(
                {
                    "text": spaces.Text(3, charset="LR"),
                    "plan": spaces.Sequence(
                        spaces.Tuple((spaces.Discrete(3), spaces.Text(2, charset="ud"))),
                        stack=True,
                    ),
                }
            ),
            spaces.OneOf(
                (
                    spaces.Graph(_box(2), _box(1, low=0.0)),
                    spaces.Tuple((spaces.Discrete(2), spaces.Sequence(_box(1)))),
                )
            ),
            _box(2),
        )
    )
    return observation, action


def _dict_action() -> SpacePair:
    action = spaces.Dict({"move": spaces.Discrete(4), "force": _box(2)})
    return _box(3, low=-10.0, high=10.0), action


def _tuple_action() -> SpacePair:
    action = spaces.Tuple((spaces.Discrete(3), _box(2), spaces.MultiBinary(2)))
    return _box(3, low=-10.0, high=10.0), action


#: Observation and action spaces of each environment, by case name. Factories, so that
#: every environment owns its spaces (and their random generators).
SPACE_CASES: dict[str, Callable[[], SpacePair]] = {
    "Text": _text,
    "Sequence": _sequence,
    "StackedSequence": _stacked_sequence,
    "Graph": _graph,
    "GraphFeatures": _graph_features,
    "OneOf": _one_of,
    "Nested": _nested,
    "DictAction": _dict_action,
    "TupleAction": _tuple_action,
}


def env_id(case: str) -> str:
    """The registered id of the environment of a case."""
    return f"gymrpc-space/{case}-v0"


def digest(value: Any) -> float:
    """A number that depends on every part of a value of any space."""
    if isinstance(value, str):
        return float(sum(map(ord, value))) / 1000 + len(value)
    if isinstance(value, spaces.GraphInstance):
        return digest(value.nodes) + digest(value.edges) + digest(value.edge_links)
    if isinstance(value, dict):
        return sum(digest(item) * (index + 1) for index, item in enumerate(value.values()))
    if isinstance(value, tuple | list):
        return sum(digest(item) * (index + 1) for index, item in enumerate(value)) + len(value)
    if value is None:
        return 0.0
    array = np.asarray(value, dtype=np.float64)
    return float((array * np.arange(1, array.size + 1).reshape(array.shape)).sum())


class SpaceEnv(gym.Env[Any, Any]):
    """Observes samples of its observation space; the reward digests the action.

    Args:
        case: A key of :data:`SPACE_CASES`.
        end_probability: Chance per step that the episode terminates.
    """

    def __init__(self, case: str, end_probability: float = 0.2) -> None:
        self.case = case
        self.observation_space, self.action_space = SPACE_CASES[case]()
        self.end_probability = end_probability
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self.action_space.seed(int(self.np_random.integers(2**31)))
        self._steps = 0
        return self.observation_space.sample(), {"case": self.case, "seeded": seed is not None}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        # The server checked the action; this proves it arrived intact as well.
        if not self.action_space.contains(action):
            raise ValueError(f"{action!r} is not in {self.action_space}")
        self._steps += 1
        reward = digest(action)
        terminated = bool(self.np_random.random() < self.end_probability)
        info: dict[str, Any] = {"digest": reward, "steps": self._steps}
        if self._steps % 2:
            # Values of the new kinds travel in infos too: in a tuple, an object array of
            # the vector info (a dict would be merged key by key, and stacks of
            # different lengths cannot be).
            info["sample"] = (self.action_space.sample(),)
        return self.observation_space.sample(), reward, terminated, False, info


# --- spaces for property tests -------------------------------------------------------------

_INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
_FLOAT_DTYPES = [np.float16, np.float32, np.float64]
_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def _boxes(draw: st.DrawFn) -> spaces.Box:
    shape: tuple[int, ...] = draw(_shapes)
    dtype: Any
    low: Any
    high: Any
    if draw(st.booleans()):
        dtype = draw(st.sampled_from(_FLOAT_DTYPES))
        low = draw(st.sampled_from([-np.inf, -1.0, 0.0]))
        high = draw(st.sampled_from([np.inf, 1.0, 2.5]))
        if draw(st.booleans()):
            # Per-element bounds.
            low = np.linspace(-3, -1, num=int(np.prod(shape))).reshape(shape).astype(dtype)
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    dtype = draw(st.sampled_from(_INT_DTYPES))
    return spaces.Box(0, draw(st.integers(1, 100)), shape=shape, dtype=dtype)


@st.composite
def _discretes(draw: st.DrawFn) -> spaces.Discrete:
    dtype: Any = draw(st.sampled_from([np.int64, np.int32, np.int16]))
    return spaces.Discrete(
        draw(st.integers(1, 10**4)), start=draw(st.integers(-100, 100)), dtype=dtype
    )


@st.composite
def _texts(draw: st.DrawFn) -> spaces.Text:
    min_length = draw(st.integers(0, 3))
    # A str charset keeps its order (which sampling follows); a set is sorted.
    chars = draw(st.lists(st.characters(codec="utf-8"), min_size=1, max_size=8, unique=True))
    charset: str | frozenset[str] = "".join(chars) if draw(st.booleans()) else frozenset(chars)
    return spaces.Text(min_length + draw(st.integers(0, 5)), min_length=min_length, charset=charset)


@st.composite
def _leaf_spaces(draw: st.DrawFn) -> spaces.Space[Any]:
    kind = draw(st.sampled_from(["box", "discrete", "multi_discrete", "multi_binary", "text"]))
    if kind == "box":
        return draw(_boxes())
    if kind == "discrete":
        return draw(_discretes())
    if kind == "text":
        return draw(_texts())
    if kind == "multi_discrete":
        shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple))
        nvec = np.full(shape, draw(st.integers(1, 9)))
        start = np.full(shape, draw(st.integers(-5, 5)))
        return spaces.MultiDiscrete(
            nvec, dtype=draw(st.sampled_from([np.int64, np.int32])), start=start
        )
    if draw(st.booleans()):
        return spaces.MultiBinary(draw(st.integers(1, 8)))
    return spaces.MultiBinary(list(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))))


_keys = st.text("abcxyz_ .", min_size=1, max_size=4)


def _features() -> st.SearchStrategy[spaces.Space[Any]]:
    """Graph node and edge spaces: any leaf, or a Dict or Tuple of leaves.

    Not deeper: a graph holds up to 10 nodes and 90 edges, each with its features.
    """
    leaves = _leaf_spaces()
    return st.one_of(
        leaves,
        st.builds(
            spaces.Dict,
            st.dictionaries(_keys, leaves, min_size=1, max_size=2),
            sort_keys=st.booleans(),
        ),
        st.lists(leaves, min_size=1, max_size=2).map(lambda items: spaces.Tuple(tuple(items))),
    )


@st.composite
def _graphs(draw: st.DrawFn) -> spaces.Graph:
    features = _features()
    return spaces.Graph(draw(features), draw(st.none() | features))


def nested_spaces(depth: int = 3) -> st.SearchStrategy[spaces.Space[Any]]:
    """Spaces of every kind for property tests, containers nesting ``depth`` levels.

    Leaves are Box, Discrete, MultiDiscrete, MultiBinary, Text and Graph (features of
    any of these leaves or a Dict or Tuple of them, with or without an edge space);
    containers are Dict (sorted or insertion-ordered keys), Tuple, Sequence (stacked or
    not) and OneOf. Dicts and Tuples are not empty: Gymnasium's ``iterate`` cannot walk
    empty ones.
    """
    if depth <= 1:
        return st.one_of(_leaf_spaces(), _graphs())
    children = nested_spaces(depth - 1)
    keys = _keys
    return st.one_of(
        _leaf_spaces(),
        _graphs(),
        # Sorted keys (Gymnasium's default) and insertion order (sort_keys=False).
        st.builds(
            spaces.Dict,
            st.dictionaries(keys, children, min_size=1, max_size=3),
            sort_keys=st.booleans(),
        ),
        st.lists(children, min_size=1, max_size=3).map(lambda items: spaces.Tuple(tuple(items))),
        st.builds(spaces.Sequence, children, stack=st.booleans()),
        st.lists(children, min_size=1, max_size=3).map(spaces.OneOf),
    )


def register() -> None:
    """Register every case (idempotent)."""
    for case in SPACE_CASES:
        if env_id(case) not in gym.registry:
            gym.register(
                env_id(case),
                entry_point=f"{__name__}:SpaceEnv",
                max_episode_steps=MAX_EPISODE_STEPS,
                kwargs={"case": case},
            )


register()
