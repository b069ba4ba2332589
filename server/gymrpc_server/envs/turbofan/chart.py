"""The picture of ``render_mode="rgb_array"``: an engine's recent sensor traces.

A frame is ``FRAME_HEIGHT x FRAME_WIDTH`` RGB, drawn with numpy for all engines at once:

* a header: a coloured square and the engine's status (flying, in shop, failed, sold,
  truncated), the sub-steps of the episode (``info["step"]``) and its repairs;
* one panel per trace, the 7 sensors then DTAMB, each a curve of the last
  :data:`~.history.HISTORY_LENGTH` sub-steps (the newest at the right,
  :data:`COLUMN_PX` pixels per sub-step) over a fixed per-sensor range, so that
  frames of different engines and times compare; a dotted line marks a new engine's
  mean reading. The range (:func:`trace_ranges`) covers an engine of the env's
  parameters from new to the largest failure threshold, at any ambient deviation, with
  4 sigma of noise; readings outside it are drawn at the panel's edge;
* the background of each sub-step says what it was: a flight (white), a shop day
  (orange), the sale (green), the failing flight (red), the new engine (blue), nothing
  yet (grey); a legend below.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from gymrpc_server.envs.turbofan.font import (
    ADVANCE,
    DIGIT_CODES,
    SPACE_CODE,
    draw_text,
    text_codes,
)
from gymrpc_server.envs.turbofan.history import (
    EMPTY,
    FAILURE,
    FLIGHT,
    HISTORY_LENGTH,
    NEW_ENGINE,
    NUM_KINDS,
    NUM_TRACES,
    SALE,
    SHOP_DAY,
)
from gymrpc_server.envs.turbofan.params import (
    NUM_SENSORS,
    SENSOR_B,
    SENSOR_L,
    SENSOR_S1,
    SENSOR_S2,
    SENSOR_SIGMA,
    SENSOR_Y0,
    TurbofanParams,
)

__all__ = [
    "FRAME_HEIGHT",
    "FRAME_WIDTH",
    "KIND_COLORS",
    "STATUS_NAMES",
    "SensorChart",
    "trace_ranges",
]

Float64Array = npt.NDArray[np.float64]
FrameArray = npt.NDArray[np.uint8]

# Layout, in pixels. Both frame sides are multiples of 16, which video encoders want.
FRAME_HEIGHT: Final = 352
FRAME_WIDTH: Final = 512
COLUMN_PX: Final = 4  # horizontal pixels per sub-step
_MARGIN: Final = 4
_SCALE: Final = 2  # font pixels are 2x2: 10 pixels tall text
_TEXT_HEIGHT: Final = 5 * _SCALE
_CHAR_WIDTH: Final = ADVANCE * _SCALE
_PLOT_X: Final = 104  # the label column is left of it
_PLOT_WIDTH: Final = HISTORY_LENGTH * COLUMN_PX
_HEADER_Y: Final = 5
_PANELS_Y: Final = 20
_PANEL_HEIGHT: Final = 32
_PANEL_PITCH: Final = 38
_FOOTER_Y: Final = _PANELS_Y + NUM_TRACES * _PANEL_PITCH + 4
# Rows within a panel fit in int8, which keeps the per-pixel comparisons small.
_ROW_DTYPE: Final = np.int8
assert _PLOT_X + _PLOT_WIDTH + _MARGIN <= FRAME_WIDTH
assert _FOOTER_Y + _TEXT_HEIGHT + _MARGIN <= FRAME_HEIGHT

_BACKGROUND: Final = (240, 240, 240)
_BORDER: Final = (150, 150, 150)
_TEXT: Final = (40, 40, 40)
_REFERENCE: Final = (165, 165, 165)
_SENSOR_TRACE: Final = (20, 70, 150)
_AMBIENT_TRACE: Final = (90, 90, 90)
_TRACE_COLORS: Final = np.array([_SENSOR_TRACE] * NUM_SENSORS + [_AMBIENT_TRACE], dtype=np.uint8)

#: Background RGB of a sub-step of each kind (:mod:`.history` codes), also in the legend.
KIND_COLORS: Final = np.zeros((NUM_KINDS, 3), dtype=np.uint8)
KIND_COLORS[EMPTY] = (222, 222, 222)
KIND_COLORS[NEW_ENGINE] = (200, 222, 255)
KIND_COLORS[FLIGHT] = (255, 255, 255)
KIND_COLORS[SHOP_DAY] = (255, 214, 160)
KIND_COLORS[SALE] = (180, 232, 180)
KIND_COLORS[FAILURE] = (255, 160, 160)
KIND_COLORS.flags.writeable = False
_LEGEND: Final = (
    (NEW_ENGINE, "new"),
    (SHOP_DAY, "shop day"),
    (SALE, "sale"),
    (FAILURE, "failure"),
)

#: Status codes of the header: 0 flying, 1 in shop, 2 failed, 3 sold, 4 truncated.
STATUS_NAMES: Final = ("flying", "in shop", "failed", "sold", "truncated")
_STATUS_COLORS: Final = np.array(
    [(60, 160, 60), (235, 140, 30), (210, 40, 40), (50, 100, 200), (120, 120, 120)],
    dtype=np.uint8,
)
_STATUS_WIDTH: Final = max(len(name) for name in STATUS_NAMES)
_STATUS_CODES: Final = np.stack([text_codes(name.ljust(_STATUS_WIDTH)) for name in STATUS_NAMES])
_STEP_CODES: Final = text_codes("  step ")
_REPAIRS_CODES: Final = text_codes("  repairs ")

_TRACE_LABELS: Final = (
    ("HPC_Tout", "K"),
    ("HP_Nmech", "rpm"),
    ("HPC_Tin", "K"),
    ("LPT_Tin", "K"),
    ("Fuel_flow", "kg/s"),
    ("HPC_Pout_st", "Pa"),
    ("LP_Nmech", "rpm"),
    ("DTAMB", "K"),
)
assert len(_TRACE_LABELS) == NUM_TRACES


def trace_ranges(params: TurbofanParams) -> tuple[Float64Array, Float64Array, Float64Array]:
    """The fixed vertical range of each trace, and a new engine's mean reading.

    Returns:
        ``(low, high, reference)``, each of shape (NUM_TRACES,): the 7 sensors then
        DTAMB.
    """
    damage = np.linspace(0.0, params.failure_threshold_max, 131)
    wear = SENSOR_S1[:, None] * damage + SENSOR_S2[:, None] * damage**2
    ambient = SENSOR_B[:, None] * (np.array([params.dtamb_min, params.dtamb_max]) - 10.0)
    noise = np.sqrt(
        (params.sensor_offset_scale * SENSOR_SIGMA) ** 2
        + (SENSOR_L**2).sum(axis=0)
        + SENSOR_SIGMA**2
    )
    low = SENSOR_Y0 + wear.min(axis=1) + ambient.min(axis=1) - 4.0 * noise
    high = SENSOR_Y0 + wear.max(axis=1) + ambient.max(axis=1) + 4.0 * noise
    reference = SENSOR_Y0 + SENSOR_B * (params.dtamb_mean - 10.0)
    padding = 0.1 * (params.dtamb_max - params.dtamb_min)
    return (
        np.append(low, params.dtamb_min - padding),
        np.append(high, params.dtamb_max + padding),
        np.append(reference, params.dtamb_mean),
    )


def _number_codes(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.intp]:
    """Right-aligned decimal glyph codes of non-negative ints, shape (n, width)."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    codes: npt.NDArray[np.intp] = DIGIT_CODES[values[:, None] // powers % 10]
    leading = values[:, None] < powers
    leading[:, -1] = False  # zero is "0"
    codes[leading] = SPACE_CODE
    return codes


class SensorChart:
    """Draws frames of engines from their histories (see the module docstring).

    Args:
        params: The model parameters, which set the ranges of the panels.
        max_episode_steps: Largest ``step`` to show, which sets the header's width.
    """

    def __init__(self, params: TurbofanParams, max_episode_steps: int) -> None:
        low, high, reference = trace_ranges(params)
        self._low = low[:, None]
        self._rows_per_unit = (_PANEL_HEIGHT - 1) / (high - low)[:, None]
        self._reference_rows = self._pixel_rows(reference[:, None])
        self._step_width = len(str(max_episode_steps))
        # A repair takes at least shop_days sub-steps.
        self._repairs_width = len(str(-(-max_episode_steps // int(params.shop_days))))
        self._template = self._draw_template()

    def draw(
        self,
        values: npt.NDArray[np.float32],
        kinds: npt.NDArray[np.uint8],
        step: npt.NDArray[np.int64],
        repairs: npt.NDArray[np.int64],
        status: npt.NDArray[np.intp],
    ) -> FrameArray:
        """Frames of n engines, uint8 of shape (n, FRAME_HEIGHT, FRAME_WIDTH, 3).

        Args:
            values: Histories in time order, shape (n, HISTORY_LENGTH, NUM_TRACES).
            kinds: Kinds of their sub-steps, shape (n, HISTORY_LENGTH).
            step: Sub-steps of each episode so far.
            repairs: Repairs of each engine.
            status: Header status codes (indices of :data:`STATUS_NAMES`).
        """
        n = values.shape[0]
        frames = np.empty((n, FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
        frames[...] = self._template
        plots = _plot_areas(frames)
        plots[...] = KIND_COLORS[kinds].repeat(COLUMN_PX, axis=1)[:, None, None]
        traces = np.arange(NUM_TRACES)[:, None]
        dotted = np.arange(0, _PLOT_WIDTH, 2)[None, :]
        plots[:, traces, self._reference_rows, dotted] = _REFERENCE
        env, trace, row, column = self._curve_pixels(values, kinds)
        plots[env, trace, row, column] = _TRACE_COLORS[trace]
        self._draw_header(frames, step, repairs, status)
        return frames

    def _pixel_rows(self, values: Float64Array) -> npt.NDArray[np.int8]:
        """Panel rows of values of shape (NUM_TRACES, ...), clipped to the panel."""
        rows = np.rint((_PANEL_HEIGHT - 1) - (values - self._low) * self._rows_per_unit)
        return np.clip(rows, 0, _PANEL_HEIGHT - 1).astype(_ROW_DTYPE)

    def _curve_pixels(
        self, values: npt.NDArray[np.float32], kinds: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.intp], ...]:
        """The pixels of the curves: (engine, trace, row, column) index arrays of the plots.

        A sub-step is a flat segment over its :data:`COLUMN_PX` columns; where the
        previous sub-step is real too, its first column also spans the rows between the
        two, which makes the curve continuous. EMPTY sub-steps draw nothing.
        """
        rows = self._pixel_rows(values.transpose(0, 2, 1).astype(np.float64))
        real = kinds != EMPTY
        previous = np.concatenate([rows[..., :1], rows[..., :-1]], axis=-1)
        joined = np.concatenate([real[:, :1], real[:, :-1]], axis=-1) & real
        previous = np.where(joined[:, None], previous, rows)
        # The rows from top to bottom of each pixel column, (n, NUM_TRACES, width).
        top = rows.repeat(COLUMN_PX, axis=-1)
        bottom = top.copy()
        top[..., ::COLUMN_PX] = np.minimum(previous, rows)
        bottom[..., ::COLUMN_PX] = np.maximum(previous, rows)
        top = np.where(real.repeat(COLUMN_PX, axis=-1)[:, None], top, _ROW_DTYPE(_PANEL_HEIGHT))
        heights = np.arange(_PANEL_HEIGHT, dtype=_ROW_DTYPE)[:, None]
        curve = (heights >= top[:, :, None, :]) & (heights <= bottom[:, :, None, :])
        # Index arrays, because assigning through a boolean mask of a strided view of
        # the frames is several times slower.
        return np.nonzero(curve)

    def _draw_header(
        self,
        frames: FrameArray,
        step: npt.NDArray[np.int64],
        repairs: npt.NDArray[np.int64],
        status: npt.NDArray[np.intp],
    ) -> None:
        n = frames.shape[0]
        box = slice(_HEADER_Y, _HEADER_Y + _TEXT_HEIGHT)
        frames[:, box, _MARGIN : _MARGIN + _TEXT_HEIGHT] = _STATUS_COLORS[status][:, None, None]
        codes = np.concatenate(
            [
                _STATUS_CODES[status],
                np.broadcast_to(_STEP_CODES, (n, _STEP_CODES.shape[0])),
                _number_codes(step, self._step_width),
                np.broadcast_to(_REPAIRS_CODES, (n, _REPAIRS_CODES.shape[0])),
                _number_codes(repairs, self._repairs_width),
            ],
            axis=1,
        )
        x = 2 * _MARGIN + _TEXT_HEIGHT
        assert x + codes.shape[1] * _CHAR_WIDTH <= FRAME_WIDTH
        draw_text(frames, codes, y=_HEADER_Y, x=x, color=_TEXT, scale=_SCALE)

    def _draw_template(self) -> FrameArray:
        """The parts of every frame that never change: labels, borders, legend."""
        frame = np.empty((1, FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
        frame[...] = _BACKGROUND
        for index, (name, unit) in enumerate(_TRACE_LABELS):
            y = _PANELS_Y + index * _PANEL_PITCH
            frame[:, y - 1 : y + _PANEL_HEIGHT + 1, _PLOT_X - 1 : _PLOT_X + _PLOT_WIDTH + 1] = (
                _BORDER
            )
            draw_text(frame, text_codes(name)[None], y=y + 1, x=_MARGIN, color=_TEXT, scale=2)
            draw_text(frame, text_codes(unit)[None], y=y + 14, x=_MARGIN, color=_TEXT, scale=2)
        x = _PLOT_X
        for kind, word in _LEGEND:
            frame[:, _FOOTER_Y : _FOOTER_Y + _TEXT_HEIGHT, x : x + _TEXT_HEIGHT] = KIND_COLORS[kind]
            x += _TEXT_HEIGHT + _SCALE
            draw_text(frame, text_codes(word)[None], y=_FOOTER_Y, x=x, color=_TEXT, scale=2)
            x += (len(word) + 1) * _CHAR_WIDTH
        now = text_codes("now")[None]
        now_x = _PLOT_X + _PLOT_WIDTH - now.shape[1] * _CHAR_WIDTH + _SCALE
        assert x <= now_x
        draw_text(frame, now, y=_FOOTER_Y, x=now_x, color=_TEXT, scale=_SCALE)
        template: FrameArray = frame[0]
        return template


def _plot_areas(frames: FrameArray) -> FrameArray:
    """A view of the plot area of every panel, shape (n, NUM_TRACES, height, width, 3)."""
    n = frames.shape[0]
    panels = frames[:, _PANELS_Y : _PANELS_Y + NUM_TRACES * _PANEL_PITCH]
    # Splitting an axis is always a view, so writes go to the frames.
    panels = panels.reshape(n, NUM_TRACES, _PANEL_PITCH, FRAME_WIDTH, 3)
    return panels[:, :, :_PANEL_HEIGHT, _PLOT_X : _PLOT_X + _PLOT_WIDTH]
