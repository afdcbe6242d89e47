"""Pixel drawing in plain numpy: a 3x5 bitmap font and a small line-plot renderer.

Used by ``worldmodels.viz.openloop`` to stamp step numbers and labels on video frames and to draw
error curves to PNG without matplotlib (not a dependency). Images are uint8 ``[H, W, 3]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# Each glyph is 5 rows of 3 pixels; a row is one octal digit, bit 2 = left column.
_GLYPHS = {
    "0": "75557", "1": "26227", "2": "71747", "3": "71317", "4": "55711",
    "5": "74717", "6": "74757", "7": "71122", "8": "75757", "9": "75717",
    "A": "25755", "B": "65656", "C": "34443", "D": "65556", "E": "74647",
    "F": "74644", "G": "34553", "H": "55755", "I": "72227", "J": "11152",
    "K": "55655", "L": "44447", "M": "57755", "N": "65555", "O": "25552",
    "P": "65644", "Q": "25563", "R": "65655", "S": "34216", "T": "72222",
    "U": "55557", "V": "55552", "W": "55775", "X": "55255", "Y": "55222",
    "Z": "71247", " ": "00000", "-": "00700", ".": "00002", ":": "02020",
    "/": "11244", "=": "07070", "+": "02720", "_": "00007", "%": "51245",
    "(": "12221", ")": "42224", "?": "71202",
}  # fmt: skip
FONT = {
    ch: np.array([[(int(row, 8) >> (2 - col)) & 1 for col in range(3)] for row in rows], dtype=bool)
    for ch, rows in _GLYPHS.items()
}
"""character -> bool mask [5, 3]; lower-case text is drawn upper-case, unknown characters as '?'."""

GLYPH_WIDTH, GLYPH_HEIGHT = 3, 5
"""glyph size in font pixels; each character advances ``GLYPH_WIDTH + 1`` font pixels."""


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in image pixels of ``text`` drawn at ``scale`` (no trailing gap)."""
    return max(0, len(text) * (GLYPH_WIDTH + 1) - 1) * scale, GLYPH_HEIGHT * scale


def draw_text(
    image: np.ndarray, text: str, x: int, y: int, scale: int = 1, color: Sequence[int] = (255, 255, 255)
) -> np.ndarray:
    """Draw ``text`` in place with its top-left corner at pixel ``(x, y)``; clipped at the edges.

    Args:
        image: uint8 ``[H, W, 3]``, modified in place.
        text: characters from :data:`FONT` (lower case is upper-cased).
        x, y: top-left corner in pixels (column, row).
        scale: each font pixel becomes a ``scale x scale`` block.
        color: RGB of the ink.

    Returns:
        ``image`` (for chaining).
    """
    height, width = image.shape[:2]
    ink = np.asarray(color, dtype=image.dtype)
    for i, ch in enumerate(text.upper()):
        glyph = FONT.get(ch, FONT["?"])
        mask = np.kron(glyph, np.ones((scale, scale), dtype=bool))  # [5s, 3s]
        x0, y0 = x + i * (GLYPH_WIDTH + 1) * scale, y
        xs0, ys0 = max(x0, 0), max(y0, 0)
        xs1, ys1 = min(x0 + mask.shape[1], width), min(y0 + mask.shape[0], height)
        if xs0 >= xs1 or ys0 >= ys1:
            continue
        sub = mask[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0]
        image[ys0:ys1, xs0:xs1][sub] = ink
    return image


def draw_line(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, color, dash: int = 0) -> None:
    """Draw a 1-pixel line from ``(x0, y0)`` to ``(x1, y1)`` in place (dashed if ``dash > 0``)."""
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, n)).astype(int)
    ys = np.rint(np.linspace(y0, y1, n)).astype(int)
    keep = (xs >= 0) & (xs < image.shape[1]) & (ys >= 0) & (ys < image.shape[0])
    if dash > 0:
        keep &= (np.arange(n) // dash) % 2 == 0
    image[ys[keep], xs[keep]] = np.asarray(color, dtype=image.dtype)


def nice_ticks(lo: float, hi: float, target: int = 5) -> np.ndarray:
    """Tick values on a 1-2-5 grid covering ``[lo, hi]`` with about ``target`` ticks."""
    raw = (hi - lo) / max(target - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1) * step


def _format_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:.3g}"


def line_plot(
    x: np.ndarray,
    series: Sequence[tuple[str, np.ndarray, Sequence[int]]],
    title: str,
    xlabel: str = "step",
    vline: float | None = None,
    vline_labels: tuple[str, str] = ("", ""),
    size: tuple[int, int] = (480, 240),
    scale: int = 2,
) -> np.ndarray:
    """Render a line plot with axes, tick labels, a legend and an optional dashed marker.

    Args:
        x: ``[N]`` x values shared by all series.
        series: ``(name, y [N], rgb)`` per line; non-finite y values are skipped.
        title: drawn top-left.
        xlabel: drawn under the x axis.
        vline: x position of a dashed vertical marker (e.g. the end of the context), or None.
        vline_labels: text drawn left and right of the marker.
        size: ``(width, height)`` of the image in pixels.
        scale: font scale.

    Returns:
        uint8 ``[height, width, 3]``, white background.
    """
    width, height = size
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    char_h = GLYPH_HEIGHT * scale
    left, right = text_size("-1.0E-04", scale)[0] + 8, 10
    top, bottom = 2 * char_h + 8, 2 * char_h + 14
    x0, x1, y0, y1 = left, width - right, top, height - bottom  # plot area in pixels
    values = np.concatenate([np.asarray(y, dtype=float)[np.isfinite(y)] for _, y, _ in series] or [np.zeros(0)])
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    xmin, xmax = float(np.min(x)), float(np.max(x)) if len(x) > 1 else float(np.min(x)) + 1

    def px(v):  # data x -> pixel column
        return x0 + (np.asarray(v, dtype=float) - xmin) / max(xmax - xmin, 1e-12) * (x1 - x0)

    def py(v):  # data y -> pixel row
        return y1 - (np.asarray(v, dtype=float) - lo) / (hi - lo) * (y1 - y0)

    grey, black = (200, 200, 200), (0, 0, 0)
    for tick in nice_ticks(lo, hi):  # y ticks + grid
        row = float(py(tick))
        draw_line(img, x0, row, x1, row, grey)
        label = _format_tick(float(tick))
        draw_text(img, label, x0 - 4 - text_size(label, scale)[0], int(row) - char_h // 2, scale, black)
    for tick in nice_ticks(xmin, xmax, 8):  # x ticks
        col = float(px(tick))
        draw_line(img, col, y1, col, y1 + 4, black)
        label = _format_tick(float(tick))
        draw_text(img, label, int(col) - text_size(label, scale)[0] // 2, y1 + 6, scale, black)
    draw_line(img, x0, y0, x0, y1, black)
    draw_line(img, x0, y1, x1, y1, black)
    draw_text(img, xlabel, (x0 + x1 - text_size(xlabel, scale)[0]) // 2, y1 + 8 + char_h, scale, black)
    draw_text(img, title, x0, 4, scale, black)
    if vline is not None:
        col = float(px(vline))
        draw_line(img, col, y0, col, y1, (90, 90, 90), dash=4)
        left_label, right_label = vline_labels
        left_width, right_width = text_size(left_label, scale)[0], text_size(right_label, scale)[0]
        if col - 4 - left_width >= x0:  # only labels that fit inside the plot area
            draw_text(img, left_label, int(col) - 4 - left_width, y0 + 3, scale, (0, 140, 0))
        if col + 5 + right_width <= x1:
            draw_text(img, right_label, int(col) + 5, y0 + 3, scale, (200, 0, 0))
    legend_x = x1
    for name, y, color in reversed(series):  # legend, right-aligned on the title row
        legend_x -= text_size(name, scale)[0] + 4
        draw_text(img, name, legend_x, 4 + char_h + 2, scale, color)
        legend_x -= 4 * scale
    for _, y, color in series:
        y = np.asarray(y, dtype=float)
        cols, rows = px(x), py(np.clip(y, lo, hi))
        for i in range(len(y) - 1):
            if np.isfinite(y[i]) and np.isfinite(y[i + 1]):
                draw_line(img, cols[i], rows[i], cols[i + 1], rows[i + 1], color)
        for i in np.flatnonzero(np.isfinite(y)):  # small markers
            r, c = int(round(rows[i])), int(round(cols[i]))
            img[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = color
    return img
