"""The documentation metadata agrees with what the envs really do, and so does the manual."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium.vector import SyncVectorEnv

from gymrpc_server.envs.turbofan import (
    REASON_FAILURE,
    REASON_RUNNING,
    REASON_SOLD,
    REASON_TRUNCATED,
    TurbofanEnv,
    TurbofanParams,
    TurbofanVectorEnv,
)
from gymrpc_server.envs.turbofan.params import OBS_NAMES

DOC_KEYS = (
    "gymrpc.description",
    "gymrpc.observation_labels",
    "gymrpc.info_keys",
    "gymrpc.episode_reason",
    "gymrpc.option_units",
)
MANUAL = Path(__file__).resolve().parents[4] / "docs" / "turbofan.md"
BOTH = pytest.mark.parametrize(
    "cls", [TurbofanEnv, TurbofanVectorEnv], ids=lambda cls: cls.__name__
)


def labels_of(metadata: dict[str, Any]) -> list[dict[str, str]]:
    (axis,) = metadata["gymrpc.observation_labels"]
    assert (axis["path"], axis["axis"]) == ("", -1)
    labels: list[dict[str, str]] = axis["labels"]
    return labels


def reported_keys(hidden: bool) -> tuple[set[str], set[str]]:
    """Info keys of a reset and a step, from the vector env (masks dropped) and the single env."""
    vector = TurbofanVectorEnv(num_envs=2, expose_hidden_state=hidden)
    single = TurbofanEnv(expose_hidden_state=hidden)
    _, vector_reset = vector.reset(seed=0)
    *_, vector_step = vector.step(np.array([1, 2]))
    _, single_reset = single.reset(seed=0)
    *_, single_step = single.step(1)
    vector_keys = {key for info in (vector_reset, vector_step) for key in info}
    assert vector_keys == {key for key in vector_keys if not key.startswith("_")} | {
        f"_{key}" for key in vector_keys if not key.startswith("_")
    }
    return {key for key in vector_keys if not key.startswith("_")}, set(single_reset) | set(
        single_step
    )


class TestObservationLabels:
    @BOTH
    @pytest.mark.parametrize("step_size", [1, 10, 37])
    def test_one_label_per_column_of_the_last_axis(self, cls: type, step_size: int) -> None:
        env = cls(step_size=step_size)
        shape = getattr(env, "single_observation_space", env.observation_space).shape
        assert len(labels_of(env.metadata)) == shape[-1] == 9

    def test_names_units_and_order(self) -> None:
        labels = labels_of(TurbofanVectorEnv.metadata)
        assert [label["name"] for label in labels] == list(OBS_NAMES)
        assert [label["unit"] for label in labels] == [
            "K",
            "rpm",
            "K",
            "K",
            "kg/s",
            "Pa",
            "rpm",
            "",
            "K",
        ]
        assert all(label["description"] for label in labels)
        assert "0 = cruise" in labels[7]["description"]
        assert "ISA" in labels[8]["description"]

    def test_phase_and_dtamb_columns_hold_what_the_labels_say(self) -> None:
        env = TurbofanVectorEnv(num_envs=16)
        obs, _ = env.reset(seed=1)
        for _ in range(5):
            obs, *_ = env.step(np.zeros(16, dtype=np.int64))
        assert (obs[..., 7] == 0).all()  # phase_type: always cruise
        assert ((obs[..., 8] >= 9.1) & (obs[..., 8] <= 10.9)).all()  # DTAMB around 9.7 K


class TestInfoKeys:
    @pytest.mark.parametrize("hidden", [False, True], ids=["public", "hidden"])
    def test_documented_keys_are_the_reported_keys(self, hidden: bool) -> None:
        documented = TurbofanVectorEnv.metadata["gymrpc.info_keys"]
        public = {entry["key"] for entry in documented if not entry["privileged"]}
        everything = {entry["key"] for entry in documented}
        vector_keys, single_keys = reported_keys(hidden)
        expected = everything if hidden else public
        assert vector_keys == expected
        assert single_keys == expected

    def test_only_the_hidden_state_is_privileged(self) -> None:
        documented = TurbofanVectorEnv.metadata["gymrpc.info_keys"]
        assert [entry["key"] for entry in documented] == [
            "step",
            "n_valid",
            "reason",
            "repairs",
            "in_shop",
            "degradation",
            "max_degradation",
        ]
        privileged = {entry["key"] for entry in documented if entry["privileged"]}
        assert privileged == {"degradation", "max_degradation"}
        assert all(type(entry["privileged"]) is bool for entry in documented)

    def test_reason_description_names_every_code(self) -> None:
        (entry,) = [
            e for e in TurbofanVectorEnv.metadata["gymrpc.info_keys"] if e["key"] == "reason"
        ]
        names = TurbofanVectorEnv.metadata["gymrpc.episode_reason"]["names"]
        for code, name in names.items():
            assert f"{code} {name}" in entry["description"]


class TestEpisodeReason:
    def test_format(self) -> None:
        reason = TurbofanVectorEnv.metadata["gymrpc.episode_reason"]
        assert reason == {
            "key": "reason",
            "names": {0: "running", 1: "failure", 2: "sold", 3: "truncated"},
            "failures": [1],
        }
        assert reason["names"] == {
            REASON_RUNNING: "running",
            REASON_FAILURE: "failure",
            REASON_SOLD: "sold",
            REASON_TRUNCATED: "truncated",
        }

    def test_names_cover_every_code_the_envs_emit(self) -> None:
        names = TurbofanVectorEnv.metadata["gymrpc.episode_reason"]["names"]
        seen: set[int] = set()
        rng = np.random.default_rng(0)
        # Long episodes end by sale and failure; short ones by truncation.
        for max_episode_steps in (1000, 30):
            env = TurbofanVectorEnv(num_envs=64, max_episode_steps=max_episode_steps)
            _, info = env.reset(seed=0)
            seen.update(info["reason"].tolist())
            for _ in range(30):
                actions = rng.choice(3, size=64, p=[0.93, 0.03, 0.04])
                *_, info = env.step(actions)
                seen.update(info["reason"].tolist())
        assert seen == {0, 1, 2, 3}  # the run really reaches every ending
        assert seen <= set(names)


class TestOptionsAndDescription:
    @BOTH
    def test_option_units_name_constructor_options(
        self, cls: type[TurbofanEnv] | type[TurbofanVectorEnv]
    ) -> None:
        units = cls.metadata["gymrpc.option_units"]
        assert units == {
            "step_size": "sub-steps per step() call",
            "max_episode_steps": "sub-steps (flights, shop days and the sale)",
        }
        assert set(units) <= set(inspect.signature(cls).parameters)

    def test_description_covers_columns_keys_codes_and_params(self) -> None:
        text = TurbofanVectorEnv.metadata["gymrpc.description"]
        assert isinstance(text, str)
        assert text.count("\n\n") >= 4  # a few paragraphs
        for word in (*OBS_NAMES, *TurbofanParams.names()):
            assert word in text, word
        for entry in TurbofanVectorEnv.metadata["gymrpc.info_keys"]:
            assert f"`{entry['key']}`" in text, entry["key"]
        assert "0 running, 1 failure, 2 sold, 3 truncated" in text
        assert "-1000" in text
        assert "ceil(max_episode_steps / step_size)" in text


class TestBothClasses:
    @pytest.mark.parametrize("key", [*DOC_KEYS, "render_modes", "render_fps"])
    def test_same_metadata_on_classes_instances_and_sync_vector_env(self, key: str) -> None:
        values = [
            TurbofanEnv.metadata[key],
            TurbofanVectorEnv.metadata[key],
            TurbofanEnv().metadata[key],
            TurbofanVectorEnv(num_envs=2).metadata[key],
            SyncVectorEnv([TurbofanEnv] * 2).metadata[key],
        ]
        assert all(value == values[0] for value in values)

    @pytest.mark.parametrize("key", DOC_KEYS)
    def test_documentation_comes_from_one_place(self, key: str) -> None:
        assert TurbofanEnv.metadata[key] is TurbofanVectorEnv(num_envs=1).metadata[key]

    def test_vector_env_keeps_its_promise_keys(self) -> None:
        metadata = TurbofanVectorEnv(num_envs=1).metadata
        assert metadata["gymrpc.reset_options_checked_first"] is True
        assert metadata is not TurbofanVectorEnv.metadata


class TestManual:
    def test_reference_returns_markers(self) -> None:
        text = MANUAL.read_text(encoding="utf-8")
        section = text.split("\n## Reference returns\n", 1)[1]
        begin = section.index("<!-- baselines:begin -->")
        assert begin < section.index("<!-- baselines:end -->")

    def test_manual_documents_columns_keys_params_and_codes(self) -> None:
        text = MANUAL.read_text(encoding="utf-8")
        for word in (*OBS_NAMES, *TurbofanParams.names()):
            assert f"`{word}`" in text, word
        for entry in TurbofanVectorEnv.metadata["gymrpc.info_keys"]:
            assert f"| `{entry['key']}` |" in text, entry["key"]
        for code, name in TurbofanVectorEnv.metadata["gymrpc.episode_reason"]["names"].items():
            assert f"| {code} | {name} |" in text
        # The params paragraph gives each default as "`name` (value", with a
        # typographic minus sign (U+2212) for negative values.
        minus = "\N{MINUS SIGN}"
        shown = dict(re.findall(rf"`(\w+)`\s+\(([{minus}0-9.e-]+)", text))
        for name in TurbofanParams.names():
            value = float(shown[name].replace(minus, "-"))
            assert value == getattr(TurbofanParams(), name), name
