"""The recent sub-steps of every engine, kept for rendering: a vectorized ring buffer.

Each engine keeps its last :data:`HISTORY_LENGTH` real observation rows (the 7 sensors
and DTAMB) and what each sub-step was (a flight, a shop day, the sale, the failing
flight, the new engine's snapshot). A reset starts the engine's history afresh, so
that a picture shows one engine's life. Rows past ``n_valid`` are never recorded.

Example:
    >>> import numpy as np
    >>> from gymrpc_server.envs.turbofan.history import FLIGHT, NEW_ENGINE, SensorHistory
    >>> history = SensorHistory(num_envs=1)
    >>> history.start(np.array([0]), np.ones((1, 9), dtype=np.float32))
    >>> history.record(np.zeros((1, 2, 9), dtype=np.float32), np.full((1, 2), FLIGHT))
    >>> values, kinds = history.recent()
    >>> kinds[0, -3:].tolist() == [NEW_ENGINE, FLIGHT, FLIGHT]
    True
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from gymrpc_server.envs.turbofan.config import MAX_STEP_SIZE
from gymrpc_server.envs.turbofan.model import REASON_FAILURE, REASON_SOLD, REPAIR
from gymrpc_server.envs.turbofan.params import NUM_SENSORS

__all__ = [
    "EMPTY",
    "FAILURE",
    "FLIGHT",
    "HISTORY_LENGTH",
    "NEW_ENGINE",
    "NUM_KINDS",
    "NUM_TRACES",
    "SALE",
    "SHOP_DAY",
    "TRACE_COLUMNS",
    "SensorHistory",
    "block_kinds",
    "shop_days_ahead",
]

#: Sub-steps kept per engine.
HISTORY_LENGTH: Final = 100
# A block is written in one go: it must not wrap onto itself.
assert HISTORY_LENGTH >= MAX_STEP_SIZE

#: Observation columns kept: the 7 sensors and DTAMB (phase_type is always 0).
TRACE_COLUMNS: Final = (*range(NUM_SENSORS), NUM_SENSORS + 1)
NUM_TRACES: Final = len(TRACE_COLUMNS)

#: Kinds of sub-step (codes of :attr:`SensorHistory.kinds`).
EMPTY: Final = 0  # nothing recorded yet
NEW_ENGINE: Final = 1  # the snapshot returned by reset
FLIGHT: Final = 2
SHOP_DAY: Final = 3
SALE: Final = 4
FAILURE: Final = 5  # the flight in which the engine failed
NUM_KINDS: Final = 6

KindArray = npt.NDArray[np.uint8]


def shop_days_ahead(
    shop_left: npt.NDArray[np.int64], actions: npt.NDArray[np.int64], shop_days: int
) -> npt.NDArray[np.int64]:
    """Leading shop days of the coming block of each engine (the rule of the model).

    An engine already in the shop stays for its remaining days (its action is
    ignored); a repair starts a visit of ``shop_days`` at the block's first sub-step.

    Args:
        shop_left: The model's ``shop_left`` before the block.
        actions: The block's actions.
        shop_days: Length of a visit.
    """
    repairing = np.where(actions == REPAIR, shop_days, 0)
    return np.where(shop_left > 0, shop_left, repairing)


def block_kinds(
    n_valid: npt.NDArray[np.int64],
    shop_days: npt.NDArray[np.int64],
    reason: npt.NDArray[np.int8],
    step_size: int,
) -> KindArray:
    """What each row of a block was, shape (n, step_size); EMPTY past ``n_valid``.

    Args:
        n_valid: Real rows of each block.
        shop_days: Leading shop days of each block (:func:`shop_days_ahead`).
        reason: The model's reason code after the block.
        step_size: Rows per block.
    """
    rows = np.arange(step_size)
    kinds = np.where(rows < shop_days[:, None], np.uint8(SHOP_DAY), np.uint8(FLIGHT))
    # A sale is the block's only row; a failure is its last real row.
    kinds[:, 0] = np.where(reason == REASON_SOLD, np.uint8(SALE), kinds[:, 0])
    failed = np.flatnonzero(reason == REASON_FAILURE)
    kinds[failed, n_valid[failed] - 1] = FAILURE
    kinds[rows >= n_valid[:, None]] = EMPTY
    return kinds


class SensorHistory:
    """The last :data:`HISTORY_LENGTH` real rows of every engine.

    Args:
        num_envs: Number of engines.
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self._values = np.zeros((num_envs, HISTORY_LENGTH, NUM_TRACES), dtype=np.float32)
        self._kinds: KindArray = np.zeros((num_envs, HISTORY_LENGTH), dtype=np.uint8)
        # Slot of the next row; also the oldest row once the buffer is full.
        self._head = np.zeros(num_envs, dtype=np.int64)
        self._slots = np.arange(HISTORY_LENGTH)
        self._columns = np.array(TRACE_COLUMNS)

    def start(self, env_indices: npt.NDArray[np.intp], rows: npt.NDArray[np.float32]) -> None:
        """Begin the histories of new engines with their first rows, shape (m, 9)."""
        self._kinds[env_indices] = EMPTY
        self._kinds[env_indices, 0] = NEW_ENGINE
        self._values[env_indices, 0] = rows[:, self._columns]
        self._head[env_indices] = 1

    def record(self, obs: npt.NDArray[np.float32], kinds: KindArray) -> None:
        """Append the real rows of a block of every engine.

        Args:
            obs: The block, shape (n, step_size, 9).
            kinds: :func:`block_kinds` of the block; EMPTY rows are skipped.
        """
        real = kinds != EMPTY
        env, row = np.nonzero(real)
        slot = (self._head[env] + row) % HISTORY_LENGTH
        self._values[env, slot] = obs[env, row][:, self._columns]
        self._kinds[env, slot] = kinds[env, row]
        self._head = (self._head + np.count_nonzero(real, axis=1)) % HISTORY_LENGTH

    def recent(self) -> tuple[npt.NDArray[np.float32], KindArray]:
        """The histories in time order, the newest row last (new arrays).

        Returns:
            Values of shape (n, HISTORY_LENGTH, NUM_TRACES) and kinds of shape (n,
            HISTORY_LENGTH); a history shorter than the buffer starts with EMPTY rows.
        """
        order = (self._head[:, None] + self._slots) % HISTORY_LENGTH
        values = np.take_along_axis(self._values, order[:, :, None], axis=1)
        return values, np.take_along_axis(self._kinds, order, axis=1)
