"""Drawing a scene: the panning textured background, each object's sprite, and compositing
them back to front into frames and visible masks."""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from flowrvs.data.synth.video import SynthObject
from flowrvs.data.synth.vocabulary import COLOURS


def _muted_colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    h = rng.random() if hue is None else hue % 1.0
    s = rng.uniform(0.05, 0.3)
    v = rng.uniform(0.3, 0.55)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def _upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a ``(gh, gw, ...)`` grid to ``(h, w, ...)``."""
    gh, gw = grid.shape[:2]
    ry = np.linspace(0.0, gh - 1.0, h, dtype=np.float32)
    rx = np.linspace(0.0, gw - 1.0, w, dtype=np.float32)
    y0 = np.minimum(ry.astype(np.int64), gh - 2)
    x0 = np.minimum(rx.astype(np.int64), gw - 2)
    fy = (ry - y0).reshape((h, 1) + (1,) * (grid.ndim - 2))
    fx = (rx - x0).reshape((1, w) + (1,) * (grid.ndim - 2))
    rows = grid[y0] * (1 - fy[:, :1]) + grid[y0 + 1] * fy[:, :1]  # (h, gw, ...)
    return rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx


def background(rng: np.random.Generator, frames: int, h: int, w: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a muted texture panning at a constant velocity."""
    vx = rng.uniform(0.5, 2.0) * (1 if rng.random() < 0.5 else -1)
    vy = rng.uniform(-1.0, 1.0)
    pad_y = int(math.ceil(abs(vy) * (frames - 1))) + 1
    pad_x = int(math.ceil(abs(vx) * (frames - 1))) + 1
    ch, cw = h + pad_y, w + pad_x
    base = _muted_colour(rng)
    hue = colorsys.rgb_to_hsv(*(base / 255.0))[0]
    other = _muted_colour(rng, hue + rng.uniform(-0.12, 0.12))
    cell = max(8.0, min(h, w) / 5.0)
    gh, gw = int(ch / cell) + 2, int(cw / cell) + 2
    lum = _upsample(rng.normal(0.0, 1.0, (gh, gw)).astype(np.float32), ch, cw)[..., None]
    chroma = _upsample(rng.normal(0.0, 1.0, (gh, gw, 3)).astype(np.float32), ch, cw)
    style = int(rng.integers(3))
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    if style == 0:  # smooth noise
        canvas = base + 22.0 * lum + 6.0 * chroma
    elif style == 1:  # stripes
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(10.0, 28.0)
        s = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
        canvas = base * (1 - s[..., None]) + other * s[..., None] + 8.0 * lum + 4.0 * chroma
    else:  # gradient
        theta = rng.uniform(0, 2 * math.pi)
        proj = xx * math.cos(theta) + yy * math.sin(theta)
        g = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
        canvas = base * (1 - g[..., None]) + other * g[..., None] + 10.0 * lum + 4.0 * chroma
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    oy0 = 0 if vy >= 0 else pad_y - 1
    ox0 = 0 if vx >= 0 else pad_x - 1
    out = np.empty((frames, h, w, 3), dtype=np.uint8)
    for t in range(frames):
        oy = min(max(int(round(oy0 + vy * t)), 0), pad_y - 1)
        ox = min(max(int(round(ox0 + vx * t)), 0), pad_x - 1)
        out[t] = canvas[oy : oy + h, ox : ox + w]
    return out


def _shape_polygon(shape: str, side: int) -> list[tuple[float, float]] | None:
    s = side - 1
    c = s / 2.0
    if shape == "triangle":
        return [(c, 0.0), (s, s), (0.0, s)]
    if shape == "diamond":
        return [(c, 0.0), (s, c), (c, s), (0.0, c)]
    if shape == "star":
        pts = []
        for k in range(10):
            r = c if k % 2 == 0 else c * 0.48
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((c + r * math.cos(a), c + 0.06 * s + r * math.sin(a)))
        return pts
    return None


def sprite(obj: SynthObject) -> tuple[np.ndarray, np.ndarray]:
    """``(side, side)`` bool mask and ``(side, side, 3)`` uint8 colours of an object."""
    side = obj.side
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    if obj.shape == "circle":
        draw.ellipse([0, 0, side - 1, side - 1], fill=255)
    elif obj.shape == "square":
        inset = int(round(side * 0.08))
        draw.rectangle([inset, inset, side - 1 - inset, side - 1 - inset], fill=255)
    else:
        draw.polygon(_shape_polygon(obj.shape, side), fill=255)
    mask = np.asarray(img) > 127
    colour = np.array(COLOURS[obj.colour], dtype=np.float32)
    rgb = np.empty((side, side, 3), dtype=np.uint8)
    rgb[:] = colour.astype(np.uint8)
    if obj.texture != "solid":
        dark = (colour * 0.55).astype(np.uint8)
        period = max(4, side // 5)
        yy, xx = np.mgrid[0:side, 0:side]
        if obj.texture == "striped":
            pattern = (yy % period) < (period // 2)
        else:  # dotted
            d = period / 2.0
            pattern = ((yy % period) - d + 0.5) ** 2 + ((xx % period) - d + 0.5) ** 2 <= (period * 0.28) ** 2
        rgb[pattern] = dark
    return mask, rgb




def _paste_box(center: np.ndarray, side: int, h: int, w: int):
    """Frame and sprite slices of a sprite centred at ``center`` (None when fully outside)."""
    y0 = int(math.floor(center[0] - side / 2.0 + 0.5))
    x0 = int(math.floor(center[1] - side / 2.0 + 0.5))
    fy0, fx0 = max(y0, 0), max(x0, 0)
    fy1, fx1 = min(y0 + side, h), min(x0 + side, w)
    if fy0 >= fy1 or fx0 >= fx1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1)), (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))


def composite(
    objects: list[SynthObject], sprites: list[tuple[np.ndarray, np.ndarray]], background: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames, visible masks ``(N, T, H, W)`` and full (unoccluded, in-frame) masks."""
    frames = background.copy()
    n = len(objects)
    t_count, h, w = frames.shape[:3]
    full = np.zeros((n, t_count, h, w), dtype=bool)
    for i in sorted(range(n), key=lambda j: objects[j].z):  # back to front
        obj = objects[i]
        mask, rgb = sprites[i]
        for t in range(t_count):
            box = _paste_box(obj.centers[t], obj.side, h, w)
            if box is None:
                continue
            (fy, fx), (sy, sx) = box
            m = mask[sy, sx]
            full[i, t, fy, fx] = m
            frames[t, fy, fx][m] = rgb[sy, sx][m]
    visible = np.zeros_like(full)
    covered = np.zeros((t_count, h, w), dtype=bool)
    for i in sorted(range(n), key=lambda j: -objects[j].z):  # front to back
        visible[i] = full[i] & ~covered
        covered |= full[i]
    return frames, visible, full
