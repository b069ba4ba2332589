"""``render_mode="rgb_array"``: frames, their agreement with SyncVectorEnv, no side effects."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import numpy.typing as npt
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import gymrpc_server  # noqa: F401 (registers the env)
from gymrpc_server.envs.turbofan import (
    ENV_ID,
    KEEP_FLYING,
    REASON_FAILURE,
    REASON_RUNNING,
    REASON_SOLD,
    REPAIR,
    SELL,
    TurbofanEnv,
    TurbofanVectorEnv,
)
from gymrpc_server.envs.turbofan.chart import FRAME_HEIGHT, FRAME_WIDTH, KIND_COLORS, trace_ranges
from gymrpc_server.envs.turbofan.font import draw_text, text_codes
from gymrpc_server.envs.turbofan.history import (
    EMPTY,
    FAILURE,
    FLIGHT,
    HISTORY_LENGTH,
    NEW_ENGINE,
    SALE,
    SHOP_DAY,
    SensorHistory,
    block_kinds,
    shop_days_ahead,
)
from gymrpc_server.envs.turbofan.params import TurbofanParams

FRAME_SHAPE = (FRAME_HEIGHT, FRAME_WIDTH, 3)
BOTH = pytest.mark.parametrize(
    "cls", [TurbofanEnv, TurbofanVectorEnv], ids=lambda cls: cls.__name__
)


def pixels_of(frame: npt.NDArray[np.uint8], color: npt.NDArray[np.uint8]) -> int:
    return int((frame == color).all(axis=-1).sum())


def single_frame(env: TurbofanEnv) -> npt.NDArray[np.uint8]:
    frame = env.render()
    assert frame is not None
    return frame


def vector_frames(env: Any) -> tuple[npt.NDArray[np.uint8], ...]:
    frames = env.render()
    assert type(frames) is tuple
    assert len(frames) == env.num_envs
    return frames


class TestOption:
    @BOTH
    def test_default_is_no_rendering(self, cls: type) -> None:
        env = cls()
        env.reset(seed=0)
        assert env.render_mode is None
        assert env.render() is None

    @BOTH
    @pytest.mark.parametrize("mode", ["human", "rgb_array_list", "ansi", "RGB_ARRAY"])
    def test_unknown_mode_names_the_option_and_the_accepted_values(
        self, cls: type, mode: str
    ) -> None:
        with pytest.raises(
            ValueError,
            match=rf"option 'render_mode' must be None or one of 'rgb_array', got '{mode}'",
        ):
            cls(render_mode=mode)

    @BOTH
    def test_metadata_declares_the_mode(self, cls: type) -> None:
        env = cls(render_mode="rgb_array")
        assert env.render_mode == "rgb_array"
        assert env.metadata["render_modes"] == ["rgb_array"]
        assert env.metadata["render_fps"] > 0


class TestFrames:
    @pytest.mark.parametrize("step_size", [1, 10, 100])
    def test_shape_dtype_and_content(self, step_size: int) -> None:
        env = TurbofanEnv(step_size=step_size, render_mode="rgb_array")
        env.reset(seed=0)
        frame = single_frame(env)
        assert frame.shape == FRAME_SHAPE
        assert frame.dtype == np.uint8
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 8  # not blank
        previous = frame
        for _ in range(3):
            *_, terminated, truncated, _ = env.step(KEEP_FLYING)
            if terminated or truncated:  # 100 flights can kill an engine
                env.reset()
            frame = single_frame(env)
            assert frame.shape == FRAME_SHAPE
            assert not np.array_equal(frame, previous)  # the traces move
            previous = frame

    def test_vector_frames(self) -> None:
        env = TurbofanVectorEnv(num_envs=3, render_mode="rgb_array")
        env.reset(seed=0)
        first = vector_frames(env)
        assert all(frame.shape == FRAME_SHAPE and frame.dtype == np.uint8 for frame in first)
        assert not np.array_equal(first[0], first[1])  # each engine its own picture
        env.step(np.array([0, 1, 2]))
        assert all(
            not np.array_equal(before, after)
            for before, after in zip(first, vector_frames(env), strict=True)
        )

    def test_render_before_reset_is_an_empty_chart(self) -> None:
        fresh = single_frame(TurbofanEnv(render_mode="rgb_array"))
        started = TurbofanEnv(render_mode="rgb_array")
        started.reset(seed=0)
        assert fresh.shape == FRAME_SHAPE
        assert not np.array_equal(fresh, single_frame(started))

    @pytest.mark.parametrize(
        ("kind", "actions"),
        [
            (SHOP_DAY, [KEEP_FLYING, REPAIR]),
            (SALE, [KEEP_FLYING, SELL]),
            (FAILURE, [KEEP_FLYING] * 30),
        ],
        ids=["shop", "sale", "failure"],
    )
    def test_events_are_marked(self, kind: int, actions: list[int]) -> None:
        env = TurbofanEnv(render_mode="rgb_array")
        env.reset(seed=3)
        color = KIND_COLORS[kind]
        legend_only = pixels_of(single_frame(env), color)
        for action in actions:
            *_, terminated, _, _ = env.step(action)
            if terminated:
                break
        # The legend always shows the colour; the panels only after the event.
        assert pixels_of(single_frame(env), color) > legend_only

    def test_history_restarts_at_reset(self) -> None:
        env = TurbofanEnv(render_mode="rgb_array")
        env.reset(seed=5)
        after_reset = single_frame(env)
        for _ in range(4):
            env.step(REPAIR)
        env.reset(seed=5)
        assert np.array_equal(single_frame(env), after_reset)

    def test_ranges_hold_a_default_engine(self) -> None:
        low, high, reference = trace_ranges(TurbofanParams())
        assert ((low < reference) & (reference < high)).all()
        env = TurbofanVectorEnv(num_envs=64, autoreset_mode=AutoresetMode.SAME_STEP)
        env.reset(seed=0)
        rows = []
        for _ in range(40):  # whole lives: every engine fails or keeps flying
            obs, *_, info = env.step(np.zeros(64, dtype=np.int64))
            real = np.arange(10) < info["n_valid"][:, None]
            rows.append(obs[real][:, [0, 1, 2, 3, 4, 5, 6, 8]])
        inside = (np.concatenate(rows) >= low) & (np.concatenate(rows) <= high)
        assert inside.mean(axis=0).min() > 0.999


def run_episodes(
    env: Any, mode: AutoresetMode, step_size: int, steps: int, render: bool
) -> tuple[list[Any], list[Any]]:
    """Step with mixed actions; return every result, and the frames after each call."""
    rng = np.random.default_rng(step_size)
    results: list[Any] = [env.reset(seed=11)]
    frames: list[Any] = [vector_frames(env)] if render else []
    for _ in range(steps):
        actions = rng.choice(3, size=env.num_envs, p=[0.85, 0.1, 0.05])
        results.append(env.step(actions))
        if render:
            frames.append(vector_frames(env))
        done = results[-1][2] | results[-1][3]
        if mode is AutoresetMode.DISABLED and done.any():
            results.append(env.reset(options={"reset_mask": done}))
            if render:
                frames.append(vector_frames(env))
    return results, frames


@pytest.mark.parametrize("step_size", [3, 10, 25])
@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_frames_equal_those_of_sync_vector_env(step_size: int, mode: AutoresetMode) -> None:
    options: dict[str, Any] = {
        "step_size": step_size,
        "max_episode_steps": 150,
        "render_mode": "rgb_array",
    }
    ours = TurbofanVectorEnv(num_envs=4, autoreset_mode=mode, **options)
    reference = SyncVectorEnv([lambda: TurbofanEnv(**options)] * 4, autoreset_mode=mode)
    assert reference.render_mode == "rgb_array"
    ours_results, ours_frames = run_episodes(ours, mode, step_size, 60, render=True)
    reference_results, reference_frames = run_episodes(reference, mode, step_size, 60, True)
    ended = sum(
        bool((result[2] | result[3]).any()) for result in ours_results[1:] if len(result) == 5
    )
    assert ended >= 3, "episodes end inside the run (autoresets are compared too)"
    assert data_equivalence(ours_results, reference_results, exact=True)
    assert len(ours_frames) == len(reference_frames)
    for ours_batch, reference_batch in zip(ours_frames, reference_frames, strict=True):
        for ours_frame, reference_frame in zip(ours_batch, reference_batch, strict=True):
            assert np.array_equal(ours_frame, reference_frame)


@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_rendering_changes_no_trajectory(mode: AutoresetMode) -> None:
    options: dict[str, Any] = {"num_envs": 5, "step_size": 7, "expose_hidden_state": True}
    plain = TurbofanVectorEnv(autoreset_mode=mode, **options)
    drawn = TurbofanVectorEnv(autoreset_mode=mode, render_mode="rgb_array", **options)
    plain_results, _ = run_episodes(plain, mode, 7, 80, render=False)
    drawn_results, frames = run_episodes(drawn, mode, 7, 80, render=True)
    assert len(frames) == len(drawn_results)
    assert data_equivalence(drawn_results, plain_results, exact=True)


def test_single_env_trajectory_is_the_same_with_rendering() -> None:
    plain = TurbofanEnv(step_size=4)
    drawn = TurbofanEnv(step_size=4, render_mode="rgb_array")
    for env in (plain, drawn):
        env.reset(seed=2)
    for index in range(60):
        action = (KEEP_FLYING, REPAIR, KEEP_FLYING, KEEP_FLYING)[index % 4]
        expected = plain.step(action)
        drawn.render()
        np.testing.assert_equal(drawn.step(action), expected)
        if expected[2] or expected[3]:
            plain.reset()
            drawn.reset()


def test_check_env_passes() -> None:
    # Through the registry the env has a spec, so check_env also builds it per render mode.
    env = gymnasium.make(ENV_ID, render_mode="rgb_array").unwrapped
    assert isinstance(env, TurbofanEnv)
    check_env(env)
    bare = TurbofanEnv(render_mode="rgb_array", step_size=3)
    with pytest.warns(UserWarning, match="Not able to test alternative render modes") as warnings:
        check_env(bare)
    # Without a spec, check_env only regrets that it cannot build other render modes.
    assert len(warnings) == 1
    assert "Not able to test alternative render modes" in str(warnings[0].message)


class TestHistory:
    def test_ring_buffer_keeps_the_last_rows_in_order(self) -> None:
        history = SensorHistory(num_envs=2)
        history.start(np.array([0, 1]), np.full((2, 9), -1.0, dtype=np.float32))
        written: list[list[float]] = [[-1.0], [-1.0]]
        counter = 0.0
        rng = np.random.default_rng(0)
        for _ in range(40):  # 40 blocks of up to 7 rows: the buffer wraps several times
            n_valid = rng.integers(1, 8, size=2)
            obs = np.zeros((2, 7, 9), dtype=np.float32)
            for env in range(2):
                for row in range(int(n_valid[env])):
                    counter += 1
                    obs[env, row] = counter
                    written[env].append(counter)
            kinds = np.where(np.arange(7) < n_valid[:, None], FLIGHT, EMPTY).astype(np.uint8)
            history.record(obs, kinds)
        values, kinds = history.recent()
        assert values.shape == (2, HISTORY_LENGTH, 8)
        for env in range(2):
            assert values[env, :, 0].tolist() == written[env][-HISTORY_LENGTH:]
            assert (kinds[env] == FLIGHT).all()
        history.start(np.array([1]), np.zeros((1, 9), dtype=np.float32))
        values, kinds = history.recent()
        assert kinds[1, -1] == NEW_ENGINE
        assert (kinds[1, :-1] == EMPTY).all()
        assert values[0, :, 0].tolist() == written[0][-HISTORY_LENGTH:]  # env 0 untouched

    def test_block_kinds(self) -> None:
        kinds = block_kinds(
            n_valid=np.array([3, 3, 1, 2, 3]),
            shop_days=np.array([0, 2, 0, 0, 10]),
            reason=np.array(
                [REASON_RUNNING, REASON_RUNNING, REASON_SOLD, REASON_FAILURE, REASON_RUNNING],
                dtype=np.int8,
            ),
            step_size=3,
        )
        assert kinds.tolist() == [
            [FLIGHT, FLIGHT, FLIGHT],
            [SHOP_DAY, SHOP_DAY, FLIGHT],
            [SALE, EMPTY, EMPTY],
            [FLIGHT, FAILURE, EMPTY],
            [SHOP_DAY, SHOP_DAY, SHOP_DAY],
        ]

    def test_shop_days_ahead_follows_the_model(self) -> None:
        ahead = shop_days_ahead(
            np.array([0, 0, 4, 4, 0]), np.array([KEEP_FLYING, REPAIR, REPAIR, SELL, SELL]), 10
        )
        assert ahead.tolist() == [0, 10, 4, 4, 0]

    def test_history_kinds_match_the_info_of_a_shop_visit(self) -> None:
        env = TurbofanEnv(step_size=3, render_mode="rgb_array")
        env.reset(seed=1)
        in_shop = []
        for action in (REPAIR, SELL, KEEP_FLYING, KEEP_FLYING, KEEP_FLYING):
            *_, info = env.step(action)  # the sale is ignored during the visit
            in_shop.append(info["in_shop"])
        assert in_shop == [True, True, True, False, False]
        shop = KIND_COLORS[SHOP_DAY]
        legend = pixels_of(single_frame(TurbofanEnv(render_mode="rgb_array")), shop)
        # 10 shop days, 4 pixel columns each, in 8 panels of 32 rows, where the curve and
        # the dotted reference line cover a few pixels of each column.
        columns = 10 * 4 * 8
        assert legend + columns * 28 <= pixels_of(single_frame(env), shop) <= legend + columns * 32


class TestFont:
    def test_unknown_characters_are_refused(self) -> None:
        with pytest.raises(ValueError, match=r"characters the font lacks: \['@'\]"):
            text_codes("a@b")

    @pytest.mark.parametrize("scale", [1, 2, 3])
    def test_glyph_pixels_scale(self, scale: int) -> None:
        canvas = np.zeros((2, 20, 40, 3), dtype=np.uint8)
        codes = np.stack([text_codes("1 "), text_codes("  ")])
        draw_text(canvas, codes, y=1, x=1, color=(9, 9, 9), scale=scale)
        # "1" has 8 lit pixels of the 3x5 grid; the second image gets only spaces.
        assert pixels_of(canvas[0], np.array([9, 9, 9], dtype=np.uint8)) == 8 * scale**2
        assert not canvas[1].any()
