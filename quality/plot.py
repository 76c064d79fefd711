"""A small PNG of the report: calibration (left) and lift by tier (right), one colour per model version.

No plotting library is installed in the image and this picture does not need one: a numpy canvas, a few primitives
and the PNG container (zlib + CRC chunks, RFC 2083). The numbers are in the Markdown next to it; the picture shows
the shape — points on the diagonal are calibrated, bars falling from A to E are a model that ranks.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

WIDTH, HEIGHT, PAD = 720, 340, 30
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
GREY, BLACK = (200, 200, 200), (40, 40, 40)


def png_bytes(canvas: np.ndarray) -> bytes:
    """RGB uint8 [H, W, 3] → PNG file bytes (8-bit truecolour, filter 0 on every row)."""
    height, width, _ = canvas.shape
    raw = np.concatenate(
        [np.zeros((height, 1), np.uint8), canvas.reshape(height, width * 3)], axis=1
    ).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


class Panel:
    """A plotting area mapping data (x, y) in [x0, x1] × [y0, y1] to pixels of the canvas."""

    def __init__(self, canvas: np.ndarray, left: int, top: int, width: int, height: int, xlim, ylim):
        self.canvas, self.left, self.top, self.width, self.height = canvas, left, top, width, height
        self.xlim, self.ylim = xlim, ylim
        self.line((xlim[0], ylim[0]), (xlim[1], ylim[0]), BLACK)
        self.line((xlim[0], ylim[0]), (xlim[0], ylim[1]), BLACK)

    def px(self, x: float, y: float) -> tuple[int, int]:
        fx = (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        fy = (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0])
        return (int(round(self.left + fx * self.width)), int(round(self.top + (1 - fy) * self.height)))

    def line(self, a, b, colour, dotted: bool = False) -> None:
        (x0, y0), (x1, y1) = self.px(*a), self.px(*b)
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        xs = np.rint(np.linspace(x0, x1, steps + 1)).astype(int)
        ys = np.rint(np.linspace(y0, y1, steps + 1)).astype(int)
        if dotted:
            xs, ys = xs[(np.arange(xs.size) // 4) % 2 == 0], ys[(np.arange(ys.size) // 4) % 2 == 0]
        self._put(xs, ys, colour)

    def dot(self, x: float, y: float, colour, radius: int = 4) -> None:
        cx, cy = self.px(x, y)
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        inside = xx**2 + yy**2 <= radius**2
        self._put(cx + xx[inside], cy + yy[inside], colour)

    def bar(self, x_left: float, x_right: float, y: float, colour) -> None:
        (a, top), (b, bottom) = self.px(x_left, y), self.px(x_right, self.ylim[0])
        top = max(top, self.top)
        self.canvas[min(top, bottom) : max(top, bottom), min(a, b) : max(a, b)] = colour

    def _put(self, xs: np.ndarray, ys: np.ndarray, colour) -> None:
        keep = (xs >= 0) & (xs < self.canvas.shape[1]) & (ys >= 0) & (ys < self.canvas.shape[0])
        self.canvas[ys[keep], xs[keep]] = colour


def render(calibration: dict[str, list[dict]], lifts: dict[str, dict[str, float]]) -> bytes:
    """calibration: version → decile rows (predicted, observed); lifts: version → tier → lift."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    half = (WIDTH - 3 * PAD) // 2
    top_value = max(
        [r["predicted"] for rows in calibration.values() for r in rows]
        + [r["observed"] for rows in calibration.values() for r in rows]
        + [0.05]
    )
    limit = min(1.0, float(np.ceil(top_value * 10) / 10))
    left = Panel(canvas, PAD, PAD, half, HEIGHT - 2 * PAD, (0, limit), (0, limit))
    left.line((0, 0), (limit, limit), GREY, dotted=True)
    versions = sorted(set(calibration) | set(lifts))
    for i, version in enumerate(versions):
        colour = PALETTE[i % len(PALETTE)]
        rows = calibration.get(version, [])
        for a, b in zip(rows, rows[1:], strict=False):
            left.line((a["predicted"], a["observed"]), (b["predicted"], b["observed"]), colour)
        for r in rows:
            left.dot(r["predicted"], r["observed"], colour)
    finite = [v for tiers in lifts.values() for v in tiers.values() if np.isfinite(v)]
    top_lift = max(finite + [1.0]) * 1.1
    right = Panel(canvas, 2 * PAD + half, PAD, half, HEIGHT - 2 * PAD, (0, 5), (0, top_lift))
    right.line((0, 1), (5, 1), GREY, dotted=True)  # lift 1 = the base rate
    width = 0.8 / max(len(versions), 1)
    for t, tier in enumerate("ABCDE"):
        for i, version in enumerate(versions):
            value = lifts.get(version, {}).get(tier, float("nan"))
            if np.isfinite(value):
                x = t + 0.1 + i * width
                right.bar(x, x + width * 0.9, value, PALETTE[i % len(PALETTE)])
    return png_bytes(canvas)
