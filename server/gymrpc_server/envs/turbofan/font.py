"""A 3x5 pixel bitmap font and vectorized text drawing, so frames need only numpy.

Upper-case letters, digits and ``_ / . -`` and space; text is upper-cased. Glyphs are
drawn at an integer ``scale`` with one blank column between characters.

Example:
    >>> import numpy as np
    >>> from gymrpc_server.envs.turbofan.font import draw_text, text_codes
    >>> canvas = np.zeros((1, 12, 20, 3), dtype=np.uint8)
    >>> draw_text(canvas, text_codes("OK")[None], y=1, x=1, color=(255, 255, 255), scale=2)
    >>> bool(canvas.any())
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["ADVANCE", "DIGIT_CODES", "GLYPH_HEIGHT", "SPACE_CODE", "draw_text", "text_codes"]

GLYPH_HEIGHT: Final = 5
GLYPH_WIDTH: Final = 3
#: Horizontal pixels per character at scale 1 (the glyph and one blank column).
ADVANCE: Final = GLYPH_WIDTH + 1

_GLYPH_ROWS: Final = {
    " ": ("...", "...", "...", "...", "..."),
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"),
    "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"),
    "F": ("###", "#..", "##.", "#..", "#.."),
    "G": (".##", "#..", "#.#", "#.#", ".##"),
    "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "J": ("..#", "..#", "..#", "#.#", ".#."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."),
    "P": ("##.", "#.#", "##.", "#..", "#.."),
    "Q": (".#.", "#.#", "#.#", "##.", ".##"),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": (".##", "#..", ".#.", "..#", "##."),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"),
    "V": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "W": ("#.#", "#.#", "###", "###", "#.#"),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."),
    "Z": ("###", "..#", ".#.", "#..", "###"),
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("##.", "..#", ".#.", "#..", "###"),
    "3": ("##.", "..#", ".#.", "..#", "##."),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "##.", "..#", "##."),
    "6": (".##", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "##."),
    "_": ("...", "...", "...", "...", "###"),
    "/": ("..#", "..#", ".#.", "#..", "#.."),
    ".": ("...", "...", "...", "...", ".#."),
    "-": ("...", "...", "###", "...", "..."),
}
_CHARACTERS: Final = "".join(_GLYPH_ROWS)
#: Glyph bitmaps, shape (characters, 5, 4): the last column is the blank spacing.
_GLYPHS: Final = np.array(
    [[[pixel == "#" for pixel in row + "."] for row in rows] for rows in _GLYPH_ROWS.values()],
    dtype=np.bool_,
)
#: Code of the digit d is ``DIGIT_CODES[d]``.
DIGIT_CODES: Final = np.array([_CHARACTERS.index(str(digit)) for digit in range(10)])
#: Code of the space character.
SPACE_CODE: Final = _CHARACTERS.index(" ")


def text_codes(text: str) -> npt.NDArray[np.intp]:
    """The glyph codes of ``text`` (upper-cased).

    Raises:
        ValueError: A character the font does not have.
    """
    upper = text.upper()
    missing = sorted(set(upper) - set(_CHARACTERS))
    if missing:
        raise ValueError(f"text {text!r} has characters the font lacks: {missing}")
    return np.array([_CHARACTERS.index(character) for character in upper], dtype=np.intp)


def draw_text(
    canvas: npt.NDArray[np.uint8],
    codes: npt.NDArray[np.intp],
    *,
    y: int,
    x: int,
    color: Sequence[int] | npt.NDArray[np.uint8],
    scale: int = 1,
) -> None:
    """Draw one line of text per image: ``codes[i]`` into ``canvas[i]``.

    Args:
        canvas: Images, shape (n, H, W, 3); the text must fit.
        codes: Glyph codes, shape (n, characters) (or (1, characters) for all images).
        y: Top row of the text.
        x: Left column of the text.
        color: RGB of the text.
        scale: Pixels per font pixel.
    """
    bitmaps = _GLYPHS[codes]  # (n, characters, 5, 4)
    bitmaps = bitmaps.repeat(scale, axis=2).repeat(scale, axis=3)
    n, characters, height, width = bitmaps.shape
    # Lay the characters side by side: (n, height, characters * width).
    mask = bitmaps.transpose(0, 2, 1, 3).reshape(n, height, characters * width)
    region = canvas[:, y : y + height, x : x + characters * width]
    region[np.broadcast_to(mask, region.shape[:3])] = np.asarray(color, dtype=np.uint8)
