"""Counter-based random streams, one per environment, computed with numpy over all of them.

numpy's ``Generator`` keeps its state per object, so a batch of engines would need a
Python loop over generators, and a single shared generator would make an engine's
noise depend on its neighbours. Instead every random number is a pure function of
three integers: the episode key of the engine, a row (the sub-step) and a slot::

    word = mix64(episode_key + (row * WORDS_PER_ROW + word_index) * GOLDEN)

which is SplitMix64 evaluated at an arbitrary position, so any block of rows of any
set of engines is computed at once, and an engine's numbers never depend on the
batch it sits in. Each 64-bit word gives two 32-bit uniforms; 14 of the 16 uniforms of
a row become standard normals by Box-Muller, 2 stay uniforms.

Keys:
    * ``reset(seed=s)`` gives the engine the stream key ``seed_keys([s])``; its
      episode ``e`` (0 for the seeded reset, then 1, 2, ... for each unseeded reset)
      draws with ``episode_keys(stream_key, e)``.
    * An engine that was never seeded takes its stream key from OS entropy, as a
      ``numpy.random.Generator`` without a seed does.

Determinism across batch sizes also needs every transcendental function (``log``,
``cos``, ``sin``) to give an element the same bits wherever it sits in the array:
numpy's SIMD loops are exact elementwise, and the arrays handed to them here are
always contiguous so that the same loop is used for every batch shape.

Example:
    >>> import numpy as np
    >>> from gymrpc_server.envs.turbofan.rng import NoiseSampler, episode_keys, seed_keys
    >>> keys = episode_keys(seed_keys([7, 8]), np.zeros(2, dtype=np.uint64))
    >>> normals, uniforms = NoiseSampler().sample(keys, np.array([0, 0]), num_rows=3)
    >>> normals.shape, uniforms.shape
    ((14, 2, 3), (2, 2, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "NUM_NORMALS",
    "NUM_UNIFORMS",
    "WORDS_PER_ROW",
    "EnvStreams",
    "NoiseSampler",
    "episode_keys",
    "mix64",
    "seed_keys",
]

UInt64Array = npt.NDArray[np.uint64]
Float64Array = npt.NDArray[np.float64]

#: 64-bit words per row (sub-step): 16 uniforms of 32 bits.
WORDS_PER_ROW: Final = 8
#: Standard normals per row: Box-Muller on the two halves of words 0..6.
NUM_NORMALS: Final = 14
#: Uniforms in (0, 1) per row: the two halves of word 7.
NUM_UNIFORMS: Final = 2

_MASK64: Final = (1 << 64) - 1
# Weyl increments (odd, so every counter maps to a distinct input): SplitMix64's
# golden-ratio constant for draws, and distinct ones to separate seeds and episodes.
_GOLDEN: Final = 0x9E3779B97F4A7C15
_SEED_SALT: Final = 0x6A09E667F3BCC909
_EPISODE_STEP: Final = 0xD1B54A32D192ED03
_BOX_MULLER_WORDS: Final = 7


def _constant(value: float, dtype: type[np.generic] = np.float64) -> npt.NDArray[np.generic]:
    """A read-only 0-d array: numpy takes it ~0.3 us faster than a Python scalar."""
    array = np.array(value, dtype=dtype)
    array.flags.writeable = False
    return array


_HALF: Final = _constant(0.5)
_HALF_TURN: Final = _constant(2.0**-32)
_MINUS_TWO: Final = _constant(-2.0)
_ANGLE_PER_HALF: Final = _constant(2.0 * np.pi * 2.0**-32)
_ROW_STEP: Final = _constant(WORDS_PER_ROW * _GOLDEN & _MASK64, np.uint64)
_MIX_SHIFTS: Final = tuple(_constant(shift, np.uint64) for shift in (30, 27, 31))
_MIX_FACTORS: Final = tuple(
    _constant(factor, np.uint64) for factor in (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
)


def mix64(words: UInt64Array) -> UInt64Array:
    """Apply SplitMix64's output function (Stafford's Mix13) in place.

    Args:
        words: Any contiguous ``uint64`` array; overwritten.

    Returns:
        ``words``, each element now a bijective hash of its old value.
    """
    _mix64_into(words, np.empty_like(words))
    return words


def _fold_seed(seed: int) -> int:
    """Reduce a non-negative seed of any size to 64 bits without aliasing small seeds."""
    if seed <= _MASK64:
        return seed
    folded = np.zeros(1, dtype=np.uint64)
    while seed:
        folded ^= np.uint64(seed & _MASK64)
        mix64(folded)
        seed >>= 64
    return int(folded[0])


def seed_keys(seeds: Sequence[int] | npt.NDArray[np.uint64]) -> UInt64Array:
    """Stream keys of engines seeded with ``seeds`` (non-negative integers).

    Args:
        seeds: One seed per engine; Python ints of any size or a ``uint64`` array.

    Returns:
        A new ``uint64`` array of keys, one per seed.
    """
    if isinstance(seeds, np.ndarray):
        keys = seeds.astype(np.uint64, copy=True)
    else:
        keys = np.array([_fold_seed(seed) for seed in seeds], dtype=np.uint64)
    np.bitwise_xor(keys, _SEED_SALT, out=keys)
    mix64(keys)
    np.add(keys, _GOLDEN, out=keys)
    return mix64(keys)


def episode_keys(stream_keys: UInt64Array, episode_indices: UInt64Array) -> UInt64Array:
    """Keys of episode ``episode_indices[i]`` of the stream ``stream_keys[i]``.

    Returns:
        A new ``uint64`` array.
    """
    keys = np.multiply(episode_indices, _EPISODE_STEP, dtype=np.uint64)
    np.add(keys, stream_keys, out=keys)
    mix64(keys)
    return mix64(keys)


class EnvStreams:
    """The random stream of every environment of a batch: its key and episode count.

    Example:
        >>> import numpy as np
        >>> streams = EnvStreams(3)
        >>> first = streams.next_episode_keys(np.arange(3), [7, 8, 9])
        >>> again = EnvStreams(1).next_episode_keys(np.array([0]), [8])
        >>> bool(first[1] == again[0])
        True
    """

    def __init__(self, num_envs: int) -> None:
        self._stream_keys = np.zeros(num_envs, dtype=np.uint64)
        self._episodes = np.zeros(num_envs, dtype=np.uint64)
        self._started = np.zeros(num_envs, dtype=np.bool_)

    def next_episode_keys(
        self,
        env_indices: npt.NDArray[np.intp],
        seeds: Sequence[int | None] | None,
    ) -> UInt64Array:
        """Start a new episode of each env in ``env_indices`` and return its key.

        Args:
            env_indices: Distinct env indices.
            seeds: ``None`` (no new seeds) or one entry per index: an int re-seeds that
                env, ``None`` continues its stream (OS entropy if it has none yet).

        Returns:
            The episode keys, aligned with ``env_indices``.
        """
        if seeds is not None:
            seeded = [pos for pos, seed in enumerate(seeds) if seed is not None]
            if seeded:
                where = env_indices[seeded]
                self._stream_keys[where] = seed_keys([seeds[pos] for pos in seeded])  # type: ignore[misc]
                self._started[where] = True
                # Episode 0 is the seeded one; the increment below makes it so.
                self._episodes[where] = np.uint64(_MASK64)
        fresh = env_indices[~self._started[env_indices]]
        if fresh.size:
            entropy = np.random.SeedSequence().generate_state(fresh.size, dtype=np.uint64)
            self._stream_keys[fresh] = entropy
            self._started[fresh] = True
            self._episodes[fresh] = np.uint64(_MASK64)
        # Unsigned wrap-around: the all-ones marker above becomes episode 0.
        episodes = self._episodes[env_indices] + np.uint64(1)
        self._episodes[env_indices] = episodes
        return episode_keys(self._stream_keys[env_indices], episodes)


class NoiseSampler:
    """Draws the normals and uniforms of blocks of rows, reusing its scratch arrays.

    Arrays are slot-major, ``(slot, engine, row)``: every slot is a contiguous
    (engines, rows) array, which keeps numpy's inner loops long for large batches.

    The returned arrays are views into buffers owned by the sampler, kept for the
    last shape drawn: they stay valid until the next :meth:`sample`. Reusing them
    keeps a large batch from page-faulting fresh megabytes on every block.
    """

    def __init__(self) -> None:
        self._buffers: _Buffers | None = None

    def sample(
        self,
        keys: UInt64Array,
        first_rows: npt.NDArray[np.int64],
        num_rows: int,
    ) -> tuple[Float64Array, Float64Array]:
        """Random numbers of rows ``first_rows[i] ...`` of episode ``keys[i]``.

        Args:
            keys: Episode keys, shape (m,).
            first_rows: First row (counter) of each engine, shape (m,), >= 0.
            num_rows: Number of consecutive rows R.

        Returns:
            ``(normals, uniforms)``: standard normals of shape (14, m, R) and uniforms
            in (0, 1) of shape (2, m, R); both valid until the next call.
        """
        shape = (keys.shape[0], num_rows)
        buffers = self._buffers
        if buffers is None or buffers.shape != shape:
            buffers = self._buffers = _Buffers(*shape)
        first = buffers.first
        np.copyto(first, first_rows, casting="unsafe")
        np.multiply(first, _ROW_STEP, out=first)
        np.add(first, keys, out=first)
        np.add(first[:, None], buffers.row_offsets, out=buffers.row_bases)
        words = buffers.words
        np.add(buffers.row_bases, buffers.word_offsets, out=words)
        _mix64_into(words, buffers.scratch)
        # Little-endian halves: [..., 0::2] low, [..., 1::2] high 32 bits of each word.
        halves = words.view(np.uint32)
        radius, angle = buffers.radius, buffers.angle
        # Box-Muller: radius from the low halves of words 0..6 in float64 (numpy's log
        # is vectorized and exact elementwise), angle from their high halves in float32,
        # whose cos/sin are vectorized where float64's are not.
        np.add(halves[:_BOX_MULLER_WORDS, :, 0::2], _HALF, out=radius)
        np.multiply(radius, _HALF_TURN, out=radius)
        np.log(radius, out=radius)
        np.multiply(radius, _MINUS_TWO, out=radius)
        np.sqrt(radius, out=radius)
        np.multiply(halves[:_BOX_MULLER_WORDS, :, 1::2], _ANGLE_PER_HALF, out=angle)
        normals = buffers.normals
        np.multiply(radius, np.cos(angle, out=buffers.trig), out=normals[:_BOX_MULLER_WORDS])
        np.multiply(radius, np.sin(angle, out=buffers.trig), out=normals[_BOX_MULLER_WORDS:])
        uniforms = buffers.uniforms
        last_word = halves[_BOX_MULLER_WORDS].reshape(shape[0], num_rows, 2)
        np.add(last_word.transpose(2, 0, 1), _HALF, out=uniforms)
        np.multiply(uniforms, _HALF_TURN, out=uniforms)
        return normals, uniforms


def _mix64_into(words: UInt64Array, scratch: UInt64Array) -> None:
    # z ^= z >> 30; z *= C1; z ^= z >> 27; z *= C2; z ^= z >> 31
    for index, shift in enumerate(_MIX_SHIFTS):
        np.right_shift(words, shift, out=scratch)
        np.bitwise_xor(words, scratch, out=words)
        if index < len(_MIX_FACTORS):
            np.multiply(words, _MIX_FACTORS[index], out=words)


class _Buffers:
    """Scratch arrays of one (engines, rows) shape."""

    def __init__(self, num_keys: int, num_rows: int) -> None:
        self.shape = (num_keys, num_rows)
        rows = np.arange(num_rows, dtype=np.uint64)
        self.row_offsets = np.multiply(rows, WORDS_PER_ROW * _GOLDEN & _MASK64, dtype=np.uint64)
        words = np.arange(WORDS_PER_ROW, dtype=np.uint64)
        self.word_offsets = np.multiply(words, _GOLDEN, dtype=np.uint64)[:, None, None]
        self.first = np.empty(num_keys, dtype=np.uint64)
        self.row_bases = np.empty((num_keys, num_rows), dtype=np.uint64)
        self.words = np.empty((WORDS_PER_ROW, num_keys, num_rows), dtype=np.uint64)
        self.scratch = np.empty_like(self.words)
        shape = (_BOX_MULLER_WORDS, num_keys, num_rows)
        self.radius = np.empty(shape, dtype=np.float64)
        self.angle = np.empty(shape, dtype=np.float32)
        self.trig = np.empty_like(self.angle)
        self.normals = np.empty((NUM_NORMALS, num_keys, num_rows), dtype=np.float64)
        self.uniforms = np.empty((NUM_UNIFORMS, num_keys, num_rows), dtype=np.float64)
