"""Pictures: one engine's life, learning curves, and a leaderboard over time.

Each ``*_figure`` function builds a ``matplotlib.figure.Figure`` (without pyplot, so no
global state and no display is involved) and :func:`save_figure` writes it; ``gymrpc
plot`` is the command line over them. matplotlib is an optional dependency (the
``plot`` extra), imported only when a figure is built: ``import gymrpc.plot`` works
without it, and building a figure without it raises :class:`MissingExtraError`.

Example:
    >>> from gymrpc.plot import engine_figure, save_figure
    >>> from gymrpc.recording import load_episode
    >>> figure = engine_figure(load_episode("runs/engines"))  # doctest: +SKIP
    >>> save_figure(figure, "engine.png")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from gymrpc.recording import RecordedEpisode
from gymrpc.scoring import Leaderboard, ScorePoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "LearningCurve",
    "MissingExtraError",
    "column_labels",
    "engine_figure",
    "leaderboard_figure",
    "read_learning_curve",
    "require",
    "returns_figure",
    "save_figure",
]

#: The turbofan's sensor columns (the 7 before phase_type and DTAMB).
SENSOR_COLUMNS: Final = tuple(range(7))
#: Shop days of a repair with the default parameters (``params["shop_days"]``).
DEFAULT_SHOP_DAYS: Final = 10
#: ``info["reason"]`` codes of the turbofan.
REASON_FAILURE: Final = 1
REASON_SOLD: Final = 2
REASON_TRUNCATED: Final = 3
#: The TensorBoard tag the examples log every finished episode's return under.
EPISODIC_RETURN_TAG: Final = "charts/episodic_return"
LEARNING_CURVE_FILE: Final = "learning_curve.csv"

# One palette for every figure: colour-blind-safe (Okabe-Ito), and the same meaning in
# every panel.
_TRACE = "#0072B2"
_RAW = "#56B4E9"
_SHOP = "#E69F00"
_SOLD = "#009E73"
_FAILURE = "#D55E00"
_MUTED = "#7F7F7F"
_RUNS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
# Units shown with an SI prefix, so that ticks read 1,367 kPa instead of 1.367e6 Pa.
_DISPLAY_UNITS: Final = {"Pa": ("kPa", 1e-3)}


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it.

    Args:
        module: The module to import, e.g. ``"matplotlib"``.
        extra: The gymrpc extra that installs it, e.g. ``"plot"``.
        purpose: What needs it, for the message.

    Raises:
        MissingExtraError: If it cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"{purpose} needs {module.partition('.')[0]}, from the optional extra {extra!r}; "
            f"install it with: pip install -e '.[{extra}]' (from a gymrpc checkout) or "
            f"pip install 'gymrpc[{extra}]'"
        ) from error


def _new_figure(width: float, height: float) -> Figure:
    require("matplotlib", "plot", "gymrpc.plot")
    figure_module = importlib.import_module("matplotlib.figure")
    figure: Figure = figure_module.Figure(figsize=(width, height), layout="constrained")
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG (or the format ``path``'s suffix names).

    Returns:
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=dpi, facecolor="white")
    return target


# --- One engine's life ----------------------------------------------------------------


def column_labels(labels: Any) -> list[tuple[str, str]] | None:
    """``(name, unit)`` of each observation column, from either source of labels.

    Args:
        labels: The ``gymrpc.observation_labels`` metadata (a list of ``{"path",
            "axis", "labels"}`` dicts, as recordings store it), or the
            ``observation_labels`` of a :class:`gymrpc.catalogue.EnvironmentSpec`.

    Returns:
        The labels of the observation's last axis, or ``None`` when there are none.
    """
    for axis in labels or ():
        fields = axis if isinstance(axis, Mapping) else vars(axis)
        if fields.get("path", "") == "" and fields.get("axis") in (-1, None):
            return [
                (item["name"], item.get("unit", ""))
                if isinstance(item, Mapping)
                else (item.name, item.unit)
                for item in fields["labels"]
            ]
    return None


@dataclass(frozen=True)
class _EngineLife:
    """One turbofan episode laid out over sub-steps (flights, shop days, the sale)."""

    substeps: npt.NDArray[np.int64]  # sub-step of each real observation row
    readings: npt.NDArray[np.float64]  # (rows, columns)
    row_block: npt.NDArray[np.int64]  # the block (0 = the reset) of each row
    flying: npt.NDArray[np.bool_]  # the row is a flight (not a shop day)
    block_first: npt.NDArray[np.int64]  # first sub-step of each step() block
    block_size: npt.NDArray[np.int64]  # real sub-steps of each block
    block_end: npt.NDArray[np.int64]  # sub-steps of the episode at each observation
    repairs_at: list[int]  # sub-step at which each repair started
    reason: int
    last: int  # the last sub-step


def _engine_life(episode: RecordedEpisode, shop_days: int) -> _EngineLife:
    infos = episode.infos
    missing = [key for key in ("step", "n_valid", "repairs", "reason") if key not in infos]
    if missing:
        raise ValueError(
            f"episode: its infos lack {', '.join(missing)}; an engine plot needs the "
            "turbofan's info keys step, n_valid, repairs and reason"
        )
    observations = np.asarray(episode.observations)
    step = np.asarray(infos["step"], dtype=np.int64)
    n_valid = np.asarray(infos["n_valid"], dtype=np.int64)
    # Only the n_valid first rows of a block are real; the others repeat the last one.
    substeps = np.concatenate(
        [np.arange(end - count + 1, end + 1) for end, count in zip(step, n_valid, strict=True)]
    )
    readings = np.concatenate([observations[t, :count] for t, count in enumerate(n_valid)]).astype(
        np.float64
    )
    repairs = np.asarray(infos["repairs"], dtype=np.int64)
    repaired = np.flatnonzero(np.diff(repairs) > 0) + 1
    # A repair happens at the first sub-step of the block that asked for it.
    repairs_at = [int(step[t - 1] + 1) for t in repaired]
    flying = np.ones(len(substeps), dtype=np.bool_)
    for start in repairs_at:
        flying &= (substeps < start) | (substeps >= start + shop_days)
    return _EngineLife(
        substeps=substeps,
        readings=readings,
        row_block=np.repeat(np.arange(len(n_valid)), n_valid),
        flying=flying,
        block_first=step[1:] - n_valid[1:] + 1,
        block_size=n_valid[1:],
        block_end=step,
        repairs_at=repairs_at,
        reason=int(np.asarray(infos["reason"])[-1]),
        last=int(step[-1]),
    )


def _shop_days(episode: RecordedEpisode) -> int:
    params = episode.recording.env_options.get("params") or {}
    return int(params.get("shop_days", DEFAULT_SHOP_DAYS))


def _mark_events(ax: Axes, life: _EngineLife, shop_days: int) -> None:
    """Shade the shop visits and mark how the episode ended, in one panel."""
    for start in life.repairs_at:
        ax.axvspan(
            start - 0.5, min(start + shop_days, life.last + 1) - 0.5, color=_SHOP, alpha=0.2, lw=0
        )
    if life.reason == REASON_FAILURE:
        ax.axvline(life.last, color=_FAILURE, lw=1.5)
    elif life.reason == REASON_SOLD:
        ax.axvline(life.last, color=_SOLD, lw=1.5)
    elif life.reason == REASON_TRUNCATED:
        ax.axvline(life.last, color=_MUTED, lw=1.2, ls="--")


def _ylabel(ax: Axes, text: str) -> None:
    ax.set_ylabel(text, rotation=0, ha="right", va="center", fontsize=9)
    # Aligned labels, whatever the width of each panel's tick labels.
    ax.yaxis.set_label_coords(-0.075, 0.5)


def engine_figure(
    episode: RecordedEpisode,
    *,
    labels: Sequence[tuple[str, str]] | None = None,
    title: str | None = None,
    columns: Sequence[int] = SENSOR_COLUMNS,
) -> Figure:
    """Draw one turbofan episode: sensors, shop visits, rewards and hidden damage.

    One panel per sensor over sub-steps (only the ``n_valid`` real rows of each
    block), the reward of each block, and, when the infos carry it
    (``expose_hidden_state``), the hidden damage against its failure threshold. Shop
    visits are shaded in every panel; a sale or a failure is marked at the end.

    Args:
        episode: A turbofan episode (``gymrpc.recording.load_episode``).
        labels: ``(name, unit)`` of each observation column; by default the labels the
            recording stores (see :func:`column_labels`), else ``column i``.
        title: The figure's title; by default the env id and the seed.
        columns: The observation columns to draw (the 7 sensors by default).

    Returns:
        The figure: one axes per sensor, then the rewards, then the damage if known.

    Raises:
        ValueError: If the episode lacks the turbofan's info keys.
        MissingExtraError: If matplotlib is not installed.
    """
    shop_days = _shop_days(episode)
    life = _engine_life(episode, shop_days)
    names = list(labels or column_labels(episode.recording.observation_labels) or [])
    hidden = "degradation" in episode.infos and "max_degradation" in episode.infos
    panels = len(columns) + 1 + int(hidden)
    ratios = [1.0] * len(columns) + [1.3] + ([1.3] if hidden else [])
    figure = _new_figure(10.0, 0.95 * sum(ratios) + 1.3)
    axes: list[Axes] = list(
        figure.subplots(panels, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    )
    block_x, block_means = _block_means(life)
    for ax, column in zip(axes, columns, strict=False):
        name, unit = names[column] if column < len(names) else (f"column {column}", "")
        shown_unit, scale = _DISPLAY_UNITS.get(unit, (unit, 1.0))
        ax.plot(life.substeps, life.readings[:, column] * scale, color=_RAW, lw=0.7)
        # Noise hides wear in single readings; a block's mean over its flights shows it.
        ax.plot(block_x, block_means[:, column] * scale, color=_TRACE, lw=1.6)
        _ylabel(ax, f"{name}\n({shown_unit})" if shown_unit else name)

    reward_ax = axes[len(columns)]
    rewards = np.asarray(episode.rewards, dtype=np.float64)
    colors = [_FAILURE if r <= -1000 else (_SHOP if r < 0 else _TRACE) for r in rewards]
    reward_ax.bar(
        life.block_first - 0.5, rewards, width=life.block_size, align="edge", color=colors, lw=0
    )
    reward_ax.axhline(0, color="black", lw=0.6)
    _ylabel(reward_ax, "reward\nper block")

    if hidden:
        damage_ax = axes[-1]
        damage = np.asarray(episode.infos["degradation"], dtype=np.float64)
        threshold = float(np.asarray(episode.infos["max_degradation"])[-1])
        damage_x, damage_y = _damage_path(episode, life)
        damage_ax.plot(damage_x, damage_y, color=_TRACE, lw=1.4)
        damage_ax.plot(life.block_end, damage, color=_TRACE, lw=0, marker="o", ms=2.5)
        damage_ax.axhline(threshold, color=_FAILURE, lw=1.2, ls="--")
        damage_ax.text(
            0.005,
            threshold,
            f"failure threshold {threshold:.2f}",
            color=_FAILURE,
            fontsize=8,
            va="bottom",
            transform=damage_ax.get_yaxis_transform(),
        )
        damage_ax.set_ylim(0, max(threshold, float(damage.max())) * 1.12)
        _ylabel(damage_ax, "hidden\ndamage D")

    ticker = importlib.import_module("matplotlib.ticker")
    for ax in axes:
        _mark_events(ax, life, shop_days)
        ax.grid(axis="y", color="#E5E5E5", lw=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=8)
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=3))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.6g}"))
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1].set_xlim(-1, life.last + 2)
    axes[-1].set_xlabel("sub-step (flight, shop day or sale)", fontsize=9)

    figure.suptitle(title or _engine_title(episode), fontsize=12, x=0.01, ha="left")
    figure.legend(
        handles=_engine_legend(life, hidden),
        loc="outside upper right",
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    return figure


def _block_means(life: _EngineLife) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean sub-step and mean readings of the flights of each block that has some."""
    xs, means = [], []
    for block in np.unique(life.row_block[life.flying]):
        rows = (life.row_block == block) & life.flying
        xs.append(float(life.substeps[rows].mean()))
        means.append(life.readings[rows].mean(axis=0))
    return np.array(xs), np.array(means).reshape(len(xs), life.readings.shape[1])


def _damage_path(episode: RecordedEpisode, life: _EngineLife) -> tuple[list[float], list[float]]:
    """The hidden damage over sub-steps, from its values at block ends.

    A repair lowers it at the visit's first sub-step and shop days leave it alone, so a
    block that ends in the shop had its end value since its repair: drawing that step
    instead of a slope through the visit.
    """
    damage = np.asarray(episode.infos["degradation"], dtype=np.float64)
    in_shop = np.asarray(episode.infos.get("in_shop", np.zeros(len(damage), np.bool_)))
    repaired_blocks = {int(np.searchsorted(life.block_end, start)) for start in life.repairs_at}
    xs: list[float] = []
    ys: list[float] = []
    for t, (end, value) in enumerate(zip(life.block_end, damage, strict=True)):
        if t in repaired_blocks and in_shop[t]:
            xs.append(float(life.block_end[t - 1] + 1))
            ys.append(float(value))
        xs.append(float(end))
        ys.append(float(value))
    return xs, ys


def _engine_title(episode: RecordedEpisode) -> str:
    recording = episode.recording
    seed = "unknown seed" if episode.seed is None else f"seed {episode.seed}"
    policy = recording.metadata.get("policy")
    head = ", ".join(
        part for part in (recording.env_id or "engine", seed, policy and f"{policy} policy") if part
    )
    life = _engine_life(episode, _shop_days(episode))
    ending = {
        REASON_FAILURE: "failed",
        REASON_SOLD: "sold",
        REASON_TRUNCATED: "truncated",
    }.get(life.reason, "ended")
    return (
        f"{head}\nreturn {episode.episode_return:,.0f} over {life.last} sub-steps, "
        f"{len(life.repairs_at)} repairs, {ending}"
    )


def _engine_legend(life: _EngineLife, hidden: bool) -> list[Any]:
    lines = importlib.import_module("matplotlib.lines")
    patches = importlib.import_module("matplotlib.patches")
    handles = [
        lines.Line2D([], [], color=_RAW, lw=1.0, label="reading"),
        lines.Line2D([], [], color=_TRACE, lw=1.6, label="mean over a block's flights"),
    ]
    if life.repairs_at:
        handles.append(patches.Patch(color=_SHOP, alpha=0.35, lw=0, label="shop visit"))
    if life.reason == REASON_SOLD:
        handles.append(lines.Line2D([], [], color=_SOLD, lw=1.5, label="sale"))
    elif life.reason == REASON_FAILURE:
        handles.append(lines.Line2D([], [], color=_FAILURE, lw=1.5, label="failure"))
    elif life.reason == REASON_TRUNCATED:
        handles.append(lines.Line2D([], [], color=_MUTED, lw=1.2, ls="--", label="time limit"))
    return handles


# --- Learning curves --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LearningCurve:
    """Episodic returns of one training run against environment steps.

    Attributes:
        name: The run's name (its directory).
        steps: Environment steps (over all envs) of each point.
        returns: The return of each point: an iteration's mean (CSV) or one
            episode's return (TensorBoard).
        per_episode: Points are single episodes (noisier) rather than means.
    """

    name: str
    steps: npt.NDArray[np.float64]
    returns: npt.NDArray[np.float64]
    per_episode: bool = False


def _read_csv_curve(path: Path, name: str) -> LearningCurve:
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if rows and not {"global_step", "mean_return"} <= set(rows[0]):
        raise ValueError(
            f"{path}: columns {sorted(rows[0])}; expected global_step and mean_return "
            "(the learning_curve.csv of examples/ppo_turbofan.py)"
        )
    steps = np.array([float(row["global_step"]) for row in rows])
    returns = np.array([float(row["mean_return"]) for row in rows])
    # Iterations in which no episode ended have no mean.
    keep = np.isfinite(returns)
    return LearningCurve(name, steps[keep], returns[keep])


def _read_tensorboard_curve(directory: Path, name: str) -> LearningCurve:
    accumulator_module = require(
        "tensorboard.backend.event_processing.event_accumulator",
        "examples",
        "reading TensorBoard logs",
    )
    accumulator = accumulator_module.EventAccumulator(str(directory), size_guidance={"scalars": 0})
    accumulator.Reload()
    if EPISODIC_RETURN_TAG not in accumulator.Tags().get("scalars", []):
        raise ValueError(
            f"{directory}: its TensorBoard logs have no {EPISODIC_RETURN_TAG!r} scalars "
            "(CleanRL's name for each finished episode's return)"
        )
    events = accumulator.Scalars(EPISODIC_RETURN_TAG)
    steps = np.array([float(event.step) for event in events])
    returns = np.array([float(event.value) for event in events])
    return LearningCurve(name, steps, returns, per_episode=True)


def read_learning_curve(path: str | os.PathLike[str]) -> LearningCurve:
    """Read a run's learning curve, as the examples write it.

    Args:
        path: A ``learning_curve.csv`` (columns ``global_step`` and ``mean_return``),
            or a run directory: its ``learning_curve.csv`` when it has one, else its
            TensorBoard logs (``charts/episodic_return``, which needs tensorboard).

    Returns:
        The curve, named after the run directory.

    Raises:
        FileNotFoundError: If ``path`` does not exist or holds neither.
        ValueError: If the file is not a learning curve.
    """
    source = Path(path)
    if source.is_file():
        name = source.parent.name if source.name == LEARNING_CURVE_FILE else source.stem
        if source.name.startswith("events.out.tfevents"):
            return _read_tensorboard_curve(source.parent, source.parent.name)
        return _read_csv_curve(source, name or str(source))
    if source.is_dir():
        if (source / LEARNING_CURVE_FILE).is_file():
            return _read_csv_curve(source / LEARNING_CURVE_FILE, source.name)
        if any(source.glob("events.out.tfevents*")):
            return _read_tensorboard_curve(source, source.name)
        raise FileNotFoundError(
            f"path: {str(source)!r} has neither {LEARNING_CURVE_FILE} nor TensorBoard logs"
        )
    raise FileNotFoundError(f"path: {str(source)!r} does not exist")


def _moving_average(values: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    averaged: npt.NDArray[np.float64] = (sums[ends] - sums[starts]) / (ends - starts)
    return averaged


def returns_figure(
    curves: Sequence[LearningCurve],
    *,
    references: Mapping[str, float] | None = None,
    smooth: int | None = None,
    title: str = "Learning curves",
) -> Figure:
    """Draw several runs' returns against environment steps, on one axes.

    Args:
        curves: The runs (see :func:`read_learning_curve`).
        references: Horizontal reference lines, ``{label: return}`` (a baseline's
            mean return, for instance).
        smooth: Points in the moving average drawn over the raw values; by default
            1 (none) for per-iteration means, and a twentieth of the points for
            per-episode returns.
        title: The figure's title.

    Returns:
        The figure (one axes).
    """
    figure = _new_figure(8.0, 4.6)
    ax: Axes = figure.subplots()
    for index, curve in enumerate(curves):
        color = _RUNS[index % len(_RUNS)]
        window = smooth or (max(1, len(curve.returns) // 20) if curve.per_episode else 1)
        if window > 1:
            ax.plot(curve.steps, curve.returns, color=color, lw=0.6, alpha=0.3)
            label = f"{curve.name} (mean of {window})"
            ax.plot(
                curve.steps,
                _moving_average(curve.returns, window),
                color=color,
                lw=1.8,
                label=label,
            )
        else:
            ax.plot(
                curve.steps, curve.returns, color=color, lw=1.6, marker="o", ms=3, label=curve.name
            )
    for index, (label, value) in enumerate((references or {}).items()):
        style = ("--", ":", "-.")[index % 3]
        ax.axhline(value, color=_MUTED, lw=1.1, ls=style, label=f"{label}: {value:,.0f}")
    ax.set_xlabel("environment steps (all envs)")
    if curves and not any(curve.per_episode for curve in curves):
        ax.set_ylabel("episodic return\n(mean of the episodes ending in each iteration)")
    else:
        ax.set_ylabel("episodic return")
    ax.set_xlim(left=0)
    ax.set_title(title, loc="left")
    ax.grid(color="#E5E5E5", lw=0.6)
    ax.set_axisbelow(True)
    ax.xaxis.set_major_formatter(_thousands())
    ax.yaxis.set_major_formatter(_thousands())
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if curves or references:
        ax.legend(fontsize=8, frameon=False, loc="best")
    return figure


def _thousands() -> Any:
    ticker = importlib.import_module("matplotlib.ticker")
    return ticker.FuncFormatter(lambda value, _: f"{value:,.0f}")


# --- The leaderboard ------------------------------------------------------------------


def leaderboard_figure(board: Leaderboard) -> Figure:
    """Draw each user's score over time, best first in the legend.

    Uses each entry's ``history`` (``leaderboard(..., include_history=True)``); an
    entry without one is drawn as its current score alone. Times on the x axis when
    every point has one, else the number of evaluation episodes.

    Args:
        board: A leaderboard from :func:`gymrpc.leaderboard`.

    Returns:
        The figure (one axes).
    """
    figure = _new_figure(8.0, 4.6)
    ax: Axes = figure.subplots()
    points = [
        list(entry.history)
        or [ScorePoint(entry.score.last_episode_time, entry.score.score, entry.score.episodes)]
        for entry in board.entries
    ]
    by_time = bool(points) and all(p.time is not None for line in points for p in line)
    for index, (entry, line) in enumerate(zip(board.entries, points, strict=True)):
        xs: list[Any] = [p.time if by_time else p.episodes for p in line]
        ys = [p.score for p in line]
        label = f"#{entry.rank} {entry.score.user}: {entry.score.score:,.0f}"
        if entry.score.provisional:
            label += " (provisional)"
        ax.plot(
            xs,
            ys,
            drawstyle="steps-post",
            marker="o",
            ms=3,
            lw=1.6,
            color=_RUNS[index % len(_RUNS)],
            label=label,
            ls="--" if entry.score.provisional else "-",
        )
    if by_time:
        dates = importlib.import_module("matplotlib.dates")
        locator = dates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
        ax.set_xlabel("time (UTC)")
    else:
        ax.set_xlabel("evaluation episodes")
    ax.set_ylabel("score")
    ax.yaxis.set_major_formatter(_thousands())
    window = f"mean return of the last {board.score_window} evaluation episodes"
    ax.set_title(f"Leaderboard of {board.env_id}\nscore: {window}", loc="left", fontsize=11)
    ax.grid(color="#E5E5E5", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if board.entries:
        ax.legend(fontsize=8, frameon=False, loc="best")
    else:
        ax.text(0.5, 0.5, "no scores yet", transform=ax.transAxes, ha="center", color=_MUTED)
    return figure
