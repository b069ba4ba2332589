"""``gymrpc.plot``: the figures have the right panels, labels and marks, and save as PNG."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.legend import Legend
from matplotlib.patches import Rectangle

import gymrpc_server  # noqa: F401  (registers gymrpc/Turbofan-v0 in-process)
from gymrpc.plot import (
    LearningCurve,
    MissingExtraError,
    column_labels,
    engine_figure,
    leaderboard_figure,
    read_learning_curve,
    returns_figure,
    save_figure,
)
from gymrpc.recording import RecordedEpisode, RecordingInfo, load_episode
from gymrpc.scoring import Leaderboard, LeaderboardEntry, Score, ScorePoint
from gymrpc.wrappers import RecordEpisodes

SENSORS = ["HPC_Tout", "HP_Nmech", "HPC_Tin", "LPT_Tin", "Fuel_flow", "HPC_Pout_st", "LP_Nmech"]
FAILURE_RED = "#d55e00"
SALE_GREEN = "#009e73"


def play(
    tmp_path: Path, actions: list[int], *, hidden: bool = True, seed: int = 0
) -> RecordedEpisode:
    """Record one in-process turbofan episode: ``actions``, then keep flying to its end."""
    envs = gymnasium.make_vec(
        "gymrpc/Turbofan-v0", 1, vectorization_mode="vector_entry_point", expose_hidden_state=hidden
    )
    recorder = RecordEpisodes(
        envs, tmp_path / f"engine-{seed}-{hidden}", metadata={"policy": "test"}
    )
    recorder.reset(seed=seed)
    planned = iter(actions)
    while recorder.episodes_recorded == 0:
        recorder.step(np.array([next(planned, 0)]))
    recorder.close()
    return load_episode(recorder.path)


def repairs_then_sale() -> list[int]:
    """Fly 3 blocks, repair, twice; then sell (blocks of 10 flights)."""
    return [0, 0, 0, 1, 0, 0, 0, 1, 0, 2]


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert isinstance(legend, Legend)
    return [text.get_text() for text in legend.get_texts()]


def ydata(line: Any) -> list[float]:
    return [float(value) for value in np.asarray(line.get_ydata())]


def ylabels(figure: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in figure.axes]


def vertical_line_colors(ax: Axes) -> set[str]:
    return {
        to_hex(line.get_color())
        for line in ax.get_lines()
        if len(set(np.asarray(line.get_xdata(), dtype=float))) == 1
    }


def assert_png(path: Path) -> None:
    """The file decodes as an image with something drawn on it."""
    image = imread(path)
    assert image.ndim == 3
    assert min(image.shape[:2]) > 200
    ink = (image[..., :3] < 0.9).any(axis=-1)
    assert 0.01 < ink.mean() < 0.9, "the picture is blank or solid"


# --- One engine's life -----------------------------------------------------------------


def test_engine_figure_has_a_panel_per_sensor_then_rewards_and_damage(tmp_path: Path) -> None:
    episode = play(tmp_path, repairs_then_sale())
    figure = engine_figure(episode)
    assert len(figure.axes) == 7 + 2
    labels = ylabels(figure)
    # Names and units from the env's metadata; pressure shown in kPa.
    assert labels[0] == "HPC_Tout\n(K)"
    assert labels[1] == "HP_Nmech\n(rpm)"
    assert labels[5] == "HPC_Pout_st\n(kPa)"
    assert [label.split("\n")[0] for label in labels[:7]] == SENSORS
    assert labels[7:] == ["reward\nper block", "hidden\ndamage D"]
    assert figure.axes[-1].get_xlabel() == "sub-step (flight, shop day or sale)"
    title = figure.get_suptitle()
    assert "seed 0" in title
    assert "2 repairs, sold" in title
    assert f"return {episode.episode_return:,.0f}" in title


def test_sensor_traces_use_only_the_real_rows_of_each_block(tmp_path: Path) -> None:
    episode = play(tmp_path, repairs_then_sale())
    figure = engine_figure(episode)
    reading = figure.axes[0].get_lines()[0]
    last = int(episode.infos["step"][-1])
    # Every sub-step once, from the new engine (0) to the sale: no repeated filler rows.
    assert np.asarray(reading.get_xdata()).tolist() == list(range(last + 1))
    assert last == 9 * 10 + 1
    # The pressure panel is in kPa: the readings divided by 1000.
    pressure = np.asarray(figure.axes[5].get_lines()[0].get_ydata())
    assert pressure[0] == pytest.approx(episode.observations[0, 0, 5] / 1000)


def test_shop_visits_are_shaded_and_the_sale_marked_in_every_panel(tmp_path: Path) -> None:
    figure = engine_figure(play(tmp_path, repairs_then_sale()))
    for ax in figure.axes:
        shaded = [patch for patch in ax.patches if patch.get_alpha() == pytest.approx(0.2)]
        assert len(shaded) == 2
        assert SALE_GREEN in vertical_line_colors(ax)
    rewards_ax = figure.axes[7]
    bars = [
        patch
        for patch in rewards_ax.patches
        if isinstance(patch, Rectangle) and patch.get_alpha() is None
    ]
    assert len(bars) == 10
    assert sum(bar.get_height() < -400 for bar in bars) == 2  # the two repairs


def test_a_failure_is_marked_and_its_block_costs_1000(tmp_path: Path) -> None:
    episode = play(tmp_path, [], seed=1)  # never repair: the engine fails
    assert episode.infos["reason"][-1] == 1
    figure = engine_figure(episode)
    assert FAILURE_RED in vertical_line_colors(figure.axes[0])
    assert "failed" in figure.get_suptitle()
    last_bar = figure.axes[7].patches[-1]
    assert isinstance(last_bar, Rectangle)
    assert last_bar.get_height() == -1000
    assert to_hex(last_bar.get_facecolor()) == FAILURE_RED
    damage_ax = figure.axes[-1]
    threshold = float(episode.infos["max_degradation"][-1])
    assert any(np.allclose(line.get_ydata(), threshold) for line in damage_ax.get_lines()), (
        "the failure threshold is drawn"
    )
    assert f"failure threshold {threshold:.2f}" in [text.get_text() for text in damage_ax.texts]


def test_without_hidden_state_there_is_no_damage_panel(tmp_path: Path) -> None:
    figure = engine_figure(play(tmp_path, repairs_then_sale(), hidden=False))
    assert len(figure.axes) == 7 + 1
    assert ylabels(figure)[-1] == "reward\nper block"


def test_labels_can_be_given_and_fall_back_to_column_numbers(tmp_path: Path) -> None:
    episode = play(tmp_path, [2])
    given = [(f"s{i}", "Pa" if i == 0 else "") for i in range(9)]
    assert ylabels(engine_figure(episode, labels=given))[:2] == ["s0\n(kPa)", "s1"]
    bare = dataclasses.replace(episode, recording=RecordingInfo())  # no labels recorded
    assert ylabels(engine_figure(bare, columns=[0, 8]))[:2] == ["column 0", "column 8"]


def test_column_labels_read_metadata_dicts_and_catalogue_objects() -> None:
    from gymrpc.catalogue import AxisLabels, ElementLabel

    metadata = [{"path": "", "axis": -1, "labels": [{"name": "a", "unit": "K"}]}]
    catalogue = (AxisLabels("", -1, (ElementLabel("b", "rpm", "speed"),)),)
    assert column_labels(metadata) == [("a", "K")]
    assert column_labels(catalogue) == [("b", "rpm")]
    assert column_labels(None) is None


def test_an_episode_of_another_env_is_refused(tmp_path: Path) -> None:
    envs = RecordEpisodes(gymnasium.make_vec("CartPole-v1", 1), tmp_path / "cartpole")
    envs.reset(seed=0)
    while envs.episodes_recorded == 0:
        envs.step(np.array([0]))
    envs.close()
    with pytest.raises(ValueError, match="lack step, n_valid, repairs, reason"):
        engine_figure(load_episode(tmp_path / "cartpole"))


def test_the_engine_png_decodes_and_is_not_blank(tmp_path: Path) -> None:
    path = save_figure(engine_figure(play(tmp_path, repairs_then_sale())), tmp_path / "a/b.png")
    assert path == tmp_path / "a/b.png"
    assert_png(path)


# --- Learning curves -----------------------------------------------------------------


def write_csv(path: Path, rows: list[tuple[int, float]]) -> Path:
    """A learning curve as examples/ppo_turbofan.py writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["global_step", "wall_time_s", "episodes", "mean_return"])
        for step, value in rows:
            writer.writerow([step, "1.000", 0 if np.isnan(value) else 5, f"{value:.2f}"])
    return path


def write_tensorboard(directory: Path, returns: list[float], tag: str) -> None:
    """TensorBoard logs as the example's ``--track`` writes them (torch's SummaryWriter)."""
    with warnings.catch_warnings():
        # Importing torch's tensorboard support may warn about deprecated APIs.
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(directory))
        for index, value in enumerate(returns):
            writer.add_scalar(tag, value, 100 * index)
        writer.close()


def test_learning_curves_from_csv_and_tensorboard_share_one_figure(tmp_path: Path) -> None:
    csv_run = tmp_path / "runs" / "ppo_seed1"
    write_csv(csv_run / "learning_curve.csv", [(2048, float("nan")), (4096, 10.0), (6144, 30.0)])
    tb_run = tmp_path / "runs" / "ppo_seed2"
    write_tensorboard(tb_run, [float(v) for v in range(40)], "charts/episodic_return")

    from_csv = read_learning_curve(csv_run)  # the run directory, or its CSV file
    from_file = read_learning_curve(csv_run / "learning_curve.csv")
    assert from_file.name == from_csv.name
    assert from_file.steps.tolist() == from_csv.steps.tolist()
    assert from_csv.name == "ppo_seed1"
    # An iteration in which no episode ended has no mean: it is left out.
    assert from_csv.steps.tolist() == [4096.0, 6144.0]
    assert not from_csv.per_episode
    from_tb = read_learning_curve(tb_run)
    assert from_tb.per_episode
    assert from_tb.steps.tolist() == [100.0 * i for i in range(40)]

    figure = returns_figure([from_csv, from_tb], references={"time policy": 4709.0})
    (ax,) = figure.axes
    legend = legend_texts(ax)
    # 40 episodes: a moving average of 2 over the raw values.
    assert legend == ["ppo_seed1", "ppo_seed2 (mean of 2)", "time policy: 4,709"]
    assert ax.get_xlabel() == "environment steps (all envs)"
    assert ax.get_ylabel() == "episodic return"
    smoothed = next(line for line in ax.get_lines() if line.get_label() == "ppo_seed2 (mean of 2)")
    assert np.asarray(smoothed.get_ydata())[1:4].tolist() == [0.5, 1.5, 2.5]
    assert_png(save_figure(figure, tmp_path / "returns.png"))


def test_smoothing_is_the_callers_choice(tmp_path: Path) -> None:
    curve = LearningCurve("run", np.arange(6.0), np.array([0.0, 3.0, 6.0, 9.0, 12.0, 15.0]))
    (ax,) = returns_figure([curve], smooth=3).axes
    lines = {line.get_label(): np.asarray(line.get_ydata()) for line in ax.get_lines()}
    assert lines["run (mean of 3)"].tolist() == [0.0, 1.5, 3.0, 6.0, 9.0, 12.0]


def test_files_that_are_not_learning_curves_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"neither learning_curve\.csv nor TensorBoard"):
        read_learning_curve(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_learning_curve(tmp_path / "missing.csv")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="expected global_step and mean_return"):
        read_learning_curve(other)
    write_tensorboard(tmp_path / "tb", [1.0], "losses/value_loss")
    with pytest.raises(ValueError, match="no 'charts/episodic_return' scalars"):
        read_learning_curve(tmp_path / "tb")


# --- The leaderboard -----------------------------------------------------------------


def board(with_times: bool = True) -> Leaderboard:
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    def entry(rank: int, user: str, scores: list[float], provisional: bool = False) -> Any:
        history = tuple(
            ScorePoint(start + timedelta(minutes=30 * i + rank) if with_times else None, s, i + 1)
            for i, s in enumerate(scores)
        )
        score = Score(
            user,
            "gymrpc/Turbofan-v0",
            scores[-1],
            len(scores),
            provisional,
            0.1,
            history[-1].time,
            len(scores),
        )
        return LeaderboardEntry(rank, score, history)

    return Leaderboard(
        "gymrpc/Turbofan-v0",
        (
            entry(1, "carol", [3000.0, 4934.0]),
            entry(2, "alice", [1851.0, 2500.0, 4709.0]),
            entry(3, "bob", [42.0], provisional=True),
        ),
        score_window=100,
        total_users=3,
    )


def test_leaderboard_draws_each_users_score_over_time(tmp_path: Path) -> None:
    figure = leaderboard_figure(board())
    (ax,) = figure.axes
    legend = legend_texts(ax)
    assert legend == ["#1 carol: 4,934", "#2 alice: 4,709", "#3 bob: 42 (provisional)"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert ydata(lines["#2 alice: 4,709"]) == [1851.0, 2500.0, 4709.0]
    assert lines["#3 bob: 42 (provisional)"].get_linestyle() == "--"
    assert ax.get_xlabel() == "time (UTC)"
    assert "last 100 evaluation episodes" in ax.get_title(loc="left")
    assert_png(save_figure(figure, tmp_path / "leaderboard.png"))


def test_leaderboard_without_times_counts_episodes_and_an_empty_one_says_so() -> None:
    (ax,) = leaderboard_figure(board(with_times=False)).axes
    assert ax.get_xlabel() == "evaluation episodes"
    empty = Leaderboard("gymrpc/Turbofan-v0", (), score_window=100, total_users=0)
    (ax,) = leaderboard_figure(empty).axes
    assert [text.get_text() for text in ax.texts] == ["no scores yet"]


def test_an_entry_without_history_is_its_current_score() -> None:
    only = board().entries[0]
    bare = Leaderboard("gymrpc/Turbofan-v0", (LeaderboardEntry(1, only.score),), 100, 1)
    (ax,) = leaderboard_figure(bare).axes
    (line,) = ax.get_lines()
    assert ydata(line) == [4934.0]


# --- The optional extra --------------------------------------------------------------


def test_a_missing_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    episode = play(tmp_path, [2])
    for name in [name for name in sys.modules if name.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package does
    with pytest.raises(MissingExtraError, match=r"pip install -e '\.\[plot\]'"):
        engine_figure(episode)
    with pytest.raises(ImportError, match="optional extra 'plot'"):
        leaderboard_figure(board())


def test_importing_gymrpc_imports_no_optional_extra() -> None:
    code = (
        "import sys, gymrpc, gymrpc.cli, gymrpc.plot, gymrpc.wrappers, gymrpc.recording\n"
        "heavy = {'matplotlib', 'torch', 'tensorboard'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
