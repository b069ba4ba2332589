"""``RecordEpisodes`` and the recording format: what is recorded replays identically.

Episodes are recorded under a seeded policy, read back with ``load_episodes``, and
their actions replayed on a fresh environment from the recorded seeds: every
observation, reward, termination, truncation and info must come back bit for bit,
in each autoreset mode, in-process and on a real server.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium
import gymrpc_test_envs  # noqa: F401  (registers gymrpc-test/DictObs-v0)
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, VectorEnv
from gymrpc_testing import Running
from vector_reference import MODES

import gymrpc
import gymrpc_server  # noqa: F401  (registers gymrpc/Turbofan-v0 in-process)
from gymrpc.recording import (
    RecordedEpisode,
    RecordingInfo,
    RecordingWriter,
    load_episode,
    load_episodes,
    structure_of,
)
from gymrpc.wrappers import RecordEpisodes

TURBOFAN = "gymrpc/Turbofan-v0"
DICT_OBS = "gymrpc-test/DictObs-v0"
NUM_ENVS = 3
STEPS = 40
SEED = 10
# Keep flying most of the time, so that episodes mix flights, repairs and sales.
ACTION_PROBABILITIES = [0.6, 0.25, 0.15]

MakeEnv = Callable[[AutoresetMode], VectorEnv[Any, Any, Any]]


def local_turbofan(mode: AutoresetMode, num_envs: int = NUM_ENVS, **options: Any) -> Any:
    return gymnasium.make_vec(
        TURBOFAN, num_envs, vectorization_mode="vector_entry_point", autoreset_mode=mode, **options
    )


def local_dict_obs(mode: AutoresetMode, num_envs: int = NUM_ENVS, **options: Any) -> Any:
    return gymnasium.make_vec(
        DICT_OBS,
        num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        **{"horizon": 6, "end_probability": 0.2, **options},
    )


def row(tree: Any, index: int) -> Any:
    """Item ``index`` of every leaf of a (possibly nested) batch."""
    if isinstance(tree, Mapping):
        return {key: row(value, index) for key, value in tree.items()}
    if isinstance(tree, tuple):
        return tuple(row(value, index) for value in tree)
    return tree[index]


def assert_same(got: Any, want: Any, what: str) -> None:
    assert data_equivalence(got, want, exact=True), f"{what}:\n got  {got!r}\n want {want!r}"


def assert_info_row(recorded: Mapping[str, Any], t: int, info: Mapping[str, Any], what: str) -> int:
    """Row ``t`` of recorded infos equals sub-env 0 of a vector info; returns keys checked."""
    checked = 0
    for key, values in recorded.items():
        if key.startswith("_"):
            continue
        present = bool(recorded["_" + key][t])
        assert present == (key in info and bool(info["_" + key][0])), f"{what}: {key} presence"
        if not present:
            continue
        if isinstance(values, Mapping):
            checked += assert_info_row(values, t, info[key], f"{what}.{key}")
        else:
            got, want = np.asarray(values[t]), np.asarray(info[key][0])
            if values.dtype.kind == "U":  # stored with the longest string's width
                assert str(got) == str(want), f"{what}.{key}"
            else:
                assert_same(got, want, f"{what}.{key}")
            checked += 1
    return checked


def record(envs: VectorEnv[Any, Any, Any], path: Path, steps: int = STEPS) -> list[RecordedEpisode]:
    """Run a seeded random policy under RecordEpisodes; return the episodes read back.

    In DISABLED mode, ended sub-envs are reset with a mask, every other time with
    seeds (so that recordings hold seeded and unseeded resets after the first).
    """
    recorder = RecordEpisodes(envs, path)
    mode = recorder.autoreset_mode
    rng = np.random.default_rng(SEED)
    n = envs.num_envs
    space = envs.single_action_space
    assert isinstance(space, spaces.Discrete)
    probabilities = ACTION_PROBABILITIES if space.n == 3 else None
    try:
        recorder.reset(seed=SEED)
        for step in range(steps):
            actions = rng.choice(int(space.n), size=n, p=probabilities)
            _, _, terminations, truncations, _ = recorder.step(actions)
            ended = terminations | truncations
            if mode is AutoresetMode.DISABLED and ended.any():
                seeds = [1000 * step + i if step % 2 else None for i in range(n)]
                recorder.reset(seed=seeds, options={"reset_mask": ended})
    finally:
        recorder.close()
    episodes = load_episodes(path)
    assert len(episodes) == recorder.episodes_recorded
    return episodes


def replay(
    episodes: list[RecordedEpisode], make_one: Callable[[], VectorEnv[Any, Any, Any]]
) -> int:
    """Replay every sub-env's episodes in order on a fresh one-env DISABLED env.

    Each sub-env's first episode starts from its recorded seed; the next ones
    continue its random stream (or start from their own seed when they have one).

    Returns:
        The number of steps replayed.
    """
    chains: dict[int, list[RecordedEpisode]] = defaultdict(list)
    for episode in episodes:
        chains[episode.env_index].append(episode)
    env = make_one()
    replayed = 0
    try:
        for env_index, chain in sorted(chains.items()):
            chain.sort(key=lambda episode: episode.env_episode)
            # No episode of the chain was left out: the stream is complete.
            assert [e.env_episode for e in chain] == list(range(len(chain)))
            assert chain[0].seed == SEED + env_index
            for episode in chain:
                what = f"env {env_index} episode {episode.env_episode}"
                assert episode.length > 0
                ends = episode.terminations | episode.truncations
                assert ends[-1], f"{what}: ends at its last step"
                assert not ends[:-1].any(), f"{what}: ends only at its last step"
                # One env: an int seed is its own (None continues its stream).
                observations, info = env.reset(seed=episode.seed)
                assert_same(row(observations, 0), row(episode.observations, 0), f"{what} reset")
                assert assert_info_row(episode.infos, 0, info, f"{what} reset info") > 0
                for t in range(episode.length):
                    action = np.asarray(row(episode.actions, t))[None]
                    observations, rewards, terminations, truncations, info = env.step(action)
                    assert_same(
                        row(observations, 0), row(episode.observations, t + 1), f"{what} obs {t}"
                    )
                    assert_same(rewards[0], episode.rewards[t], f"{what} reward {t}")
                    assert terminations[0] == episode.terminations[t]
                    assert truncations[0] == episode.truncations[t]
                    assert_info_row(episode.infos, t + 1, info, f"{what} info {t}")
                    replayed += 1
    finally:
        env.close()
    return replayed


@pytest.mark.parametrize("mode", MODES)
def test_turbofan_in_process_replays_identically(tmp_path: Path, mode: AutoresetMode) -> None:
    episodes = record(local_turbofan(mode), tmp_path / "rec")
    assert len(episodes) >= 2 * NUM_ENVS
    assert {episode.env_index for episode in episodes} == set(range(NUM_ENVS))
    replayed = replay(episodes, lambda: local_turbofan(AutoresetMode.DISABLED, 1))
    # The NEXT_STEP reset steps belong to no episode: the episodes hold fewer steps.
    assert replayed == sum(episode.length for episode in episodes)
    first = episodes[0]
    assert first.observations.shape == (first.length + 1, 10, 9)
    assert first.observations.dtype == np.float32
    assert first.infos["reason"].dtype == np.int8
    assert first.recording.env_id == TURBOFAN
    assert first.recording.autoreset_mode == mode.value


@pytest.mark.parametrize("mode", MODES)
def test_turbofan_on_a_server_replays_identically(
    running: Running, tmp_path: Path, mode: AutoresetMode
) -> None:
    envs = gymrpc.make_vec(
        TURBOFAN, NUM_ENVS, target=running.target, autoreset_mode=mode, step_size=5
    )
    episodes = record(envs, tmp_path / "rec")
    assert len(episodes) >= 2 * NUM_ENVS
    recording = episodes[0].recording
    # A remote env's id and options come from its session, defaults included.
    assert recording.env_id == TURBOFAN
    assert recording.env_options["step_size"] == 5
    assert recording.env_options["max_episode_steps"] == 1000
    assert episodes[0].observations.shape[1:] == (5, 9)

    def fresh() -> VectorEnv[Any, Any, Any]:
        return gymrpc.make_vec(
            TURBOFAN,
            1,
            target=running.target,
            autoreset_mode=AutoresetMode.DISABLED,
            **recording.env_options,
        )

    assert replay(episodes, fresh) == sum(episode.length for episode in episodes)


@pytest.mark.parametrize("mode", MODES)
def test_dict_observations_and_varied_infos_replay_identically(
    tmp_path: Path, mode: AutoresetMode
) -> None:
    episodes = record(local_dict_obs(mode), tmp_path / "rec", steps=30)
    assert replay(episodes, lambda: local_dict_obs(AutoresetMode.DISABLED, 1)) > 0
    first = episodes[0]
    assert set(first.observations) == {"position", "count", "flags"}
    assert first.observations["position"].shape == (first.length + 1, 2)
    assert first.observations["flags"].dtype == np.int8
    # The reset's info differs from the steps': masks say which rows hold each key.
    assert first.infos["_label"].tolist() == [True] + [False] * first.length
    assert first.infos["label"][0] == "reset"
    assert first.infos["detail"]["noise"].shape == (first.length + 1, 2)
    assert first.infos["_detail"].tolist() == [False] + [True] * first.length
    assert first.recording.env_options == {"horizon": 6, "end_probability": 0.2}


def test_a_partial_reset_drops_the_running_episode_and_skips_the_others(tmp_path: Path) -> None:
    envs = RecordEpisodes(local_turbofan(AutoresetMode.NEXT_STEP, 2), tmp_path / "rec")
    first, _ = envs.reset(seed=0)
    kept = [first[1]]
    for _ in range(2):
        observations, *_ = envs.step(np.array([0, 0]))
        kept.append(observations[1])
    # Engine 0 starts over: its unfinished episode is not recorded; for engine 1 this
    # reset is no step of its episode.
    envs.reset(seed=[100, None], options={"reset_mask": np.array([True, False])})
    observations, *_ = envs.step(np.array([0, 2]))
    kept.append(observations[1])
    envs.step(np.array([2, 0]))
    envs.close()
    engine_1, engine_0 = load_episodes(tmp_path / "rec")
    assert (engine_1.env_index, engine_1.env_episode, engine_1.seed) == (1, 0, 1)
    assert engine_1.actions.tolist() == [0, 0, 2]
    assert_same(engine_1.observations, np.stack(kept), "engine 1's observations")
    assert (engine_0.env_index, engine_0.env_episode, engine_0.seed) == (0, 1, 100)
    assert engine_0.actions.tolist() == [0, 2]
    assert engine_0.infos["reason"].tolist() == [0, 0, 2]


def test_episodes_running_at_close_are_not_written(tmp_path: Path) -> None:
    envs = RecordEpisodes(local_turbofan(AutoresetMode.NEXT_STEP, 2), tmp_path / "rec")
    envs.reset(seed=0)
    envs.step(np.array([2, 0]))
    envs.step(np.array([0, 0]))
    envs.close()
    episodes = load_episodes(tmp_path / "rec")
    assert [(episode.env_index, episode.length) for episode in episodes] == [(0, 1)]
    lines = (tmp_path / "rec" / "episodes.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["file"] == "episodes/000000.npz"


def test_labels_come_from_the_env_metadata_or_the_caller(tmp_path: Path) -> None:
    envs = RecordEpisodes(local_turbofan(AutoresetMode.NEXT_STEP, 1), tmp_path / "a")
    envs.close()
    header = json.loads((tmp_path / "a" / "recording.json").read_text())
    assert header["format"] == "gymrpc-episodes"
    assert header["observation_labels"][0]["labels"][0] == {
        "name": "HPC_Tout",
        "unit": "K",
        "description": "HP compressor outlet temperature",
    }
    labels = [{"path": "", "axis": -1, "labels": [{"name": "x", "unit": "m", "description": ""}]}]
    envs = RecordEpisodes(
        local_turbofan(AutoresetMode.NEXT_STEP, 1),
        tmp_path / "b",
        observation_labels=labels,
        metadata={"policy": "time"},
    )
    envs.reset(seed=3)
    envs.step(np.array([2]))
    envs.close()
    episode = load_episode(tmp_path / "b")
    assert episode.recording.observation_labels == labels
    assert episode.recording.metadata == {"policy": "time"}
    assert episode.seed == 3


def test_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        RecordEpisodes(local_turbofan(AutoresetMode.NEXT_STEP, 1), tmp_path / "rec")


def test_spaces_without_fixed_shape_arrays_are_refused() -> None:
    with pytest.raises(TypeError, match=r"observation space\['text'\]: Text"):
        structure_of(spaces.Dict({"text": spaces.Text(5)}), "observation space")


# --- The format ----------------------------------------------------------------------------


def handmade_episode() -> RecordedEpisode:
    """An episode with nested spaces and infos of many dtypes, as a writer receives it."""
    t = 3
    rng = np.random.default_rng(0)
    return RecordedEpisode(
        observations={
            "image": rng.integers(0, 255, (t + 1, 4, 4, 3), dtype=np.uint8),
            "state": (rng.random((t + 1, 2)).astype(np.float16), np.arange(t + 1, dtype=np.int32)),
            "odd/key%": np.ones((t + 1,), dtype=np.bool_),
        },
        actions=rng.random((t, 2)).astype(np.float32),
        rewards=np.array([1.5, -2.0, np.inf]),
        terminations=np.array([False, False, True]),
        truncations=np.array([False, False, False]),
        infos={
            "count": np.arange(t + 1, dtype=np.uint64),
            "_count": np.ones(t + 1, dtype=np.bool_),
            "cause": np.array(["", "", "", "random end"]),
            "_cause": np.array([False, False, False, True]),
            "detail": {"noise": np.zeros((t + 1, 2), np.float32), "_noise": np.ones(t + 1, bool)},
            "_detail": np.array([False, True, True, True]),
        },
        seed=2**40,
        env_index=5,
        env_episode=7,
        episode_id=0,
        recording=RecordingInfo(
            env_id="custom/Env-v0",
            env_options={"size": 4, "mode": "fast"},
            num_envs=8,
            observation_structure=structure_of(
                spaces.Dict(
                    {
                        "image": spaces.Box(0, 255, (4, 4, 3), np.uint8),
                        "state": spaces.Tuple((spaces.Box(0, 1, (2,)), spaces.Discrete(9))),
                        "odd/key%": spaces.MultiBinary(1),
                    }
                )
            ),
        ),
    )


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_the_format_round_trips_dtypes_shapes_and_nesting(tmp_path: Path, compress: bool) -> None:
    episode = handmade_episode()
    writer = RecordingWriter(tmp_path / "rec", episode.recording, compress=compress)
    writer.write(episode)
    writer.close()
    (loaded,) = load_episodes(tmp_path / "rec")
    for name in ("observations", "actions", "rewards", "terminations", "truncations", "infos"):
        assert_same(getattr(loaded, name), getattr(episode, name), name)
    assert (loaded.seed, loaded.env_index, loaded.env_episode) == (2**40, 5, 7)
    assert loaded.recording.env_options == {"size": 4, "mode": "fast"}
    assert loaded.episode_return == np.inf
    assert (loaded.terminated, loaded.truncated) == (True, False)
    # One archive alone is a whole episode too.
    alone = load_episode(tmp_path / "rec" / "episodes" / "000000.npz")
    assert_same(alone.observations, episode.observations, "one archive's observations")
    assert alone.recording.env_id == "custom/Env-v0"


def test_reading_survives_a_partial_last_index_line(tmp_path: Path) -> None:
    episode = handmade_episode()
    writer = RecordingWriter(tmp_path / "rec", episode.recording)
    writer.write(episode)
    writer.close()
    with (tmp_path / "rec" / "episodes.jsonl").open("a") as index:
        index.write('{"episode_id": 1, "fi')  # a writer killed mid-line
    assert len(load_episodes(tmp_path / "rec")) == 1
    with pytest.raises(IndexError, match="has 1 episode"):
        load_episode(tmp_path / "rec", 1)


def test_other_files_and_newer_versions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no recording\.json"):
        load_episodes(tmp_path)
    (tmp_path / "recording.json").write_text(
        json.dumps({"format": "gymrpc-episodes", "version": 99})
    )
    with pytest.raises(ValueError, match="format version 99"):
        load_episodes(tmp_path)
