"""Procedural referring-video data in the MeViS layout (``flowrvs synth``).

Each video is a panning textured background with 2-5 flat-coloured shapes that move
(constant velocity, stop, turn, enter or leave the frame) and occlude each other.
Every sentence is built from a small regular grammar and singles out exactly the
objects it lists:

* appearance: ``the [small|large] [solid|striped|dotted] [<colour>] <shape|shape|object>``
* motion:     ``<np> that moves to the left``, ``<np> moving up``, ``<np> that stops``,
  ``<np> that turns``, ``<np> that enters``, ``<np> that leaves``, ``<np> that does not move``
* relation:   ``<np> above|below|left of|right of <unique np>``
* multi:      ``the two|three <adjectives> <plural noun>``

:func:`resolve` evaluates a sentence against a :class:`SynthVideo` with the same
predicates, so the generator's claims can be checked independently.

Library use without disk: :func:`generate_video`. On disk: :func:`write_split` writes
``<out_dir>/<split>/{JPEGImages/<video>/<frame>.jpg, meta_expressions.json, mask_dict.json}``
atomically; other splits of ``out_dir`` are left alone.
"""

from __future__ import annotations

import colorsys
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from flowrvs.errors import FlowRVSError

# --------------------------------------------------------------------------- vocabulary

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (245, 215, 30),
    "purple": (140, 50, 200),
    "orange": (250, 130, 20),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond")
SIZES: tuple[str, ...] = ("small", "large")
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")
TEXTURE_PROBS: tuple[float, ...] = (0.7, 0.15, 0.15)
GENERIC_NOUNS: tuple[str, ...] = ("shape", "object")
NUMBERS: dict[int, str] = {2: "two", 3: "three"}
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
RELATIONS: tuple[str, ...] = ("above", "below", "left of", "right of")
# motion tag -> the clauses that express it
MOTION_CLAUSES: dict[str, tuple[str, ...]] = {
    "left": ("that moves to the left", "moving left"),
    "right": ("that moves to the right", "moving right"),
    "up": ("that moves up", "moving up"),
    "down": ("that moves down", "moving down"),
    "stops": ("that stops",),
    "turns": ("that turns",),
    "still": ("that does not move",),
    "enters": ("that enters",),
    "leaves": ("that leaves",),
}

# Expected fraction of each expression kind (motion falls back to the others for 1-frame videos).
EXPRESSION_MIX: dict[str, float] = {"appearance": 0.60, "motion": 0.25, "relation": 0.10, "multi": 0.05}
EXPRESSION_KINDS: tuple[str, ...] = tuple(EXPRESSION_MIX)
MIN_OBJECTS, MAX_OBJECTS = 2, 5
MIN_EXPRESSIONS, MAX_EXPRESSIONS = 2, 6
# Object side as a fraction of min(H, W): 96 px high frames give ~17 px small and ~35 px large shapes.
SIZE_FRACTION: dict[str, float] = {"small": 0.18, "large": 0.36}
MIN_SIDE: dict[str, int] = {"small": 5, "large": 8}  # keeps the two sizes apart in tiny frames
# Chance that a new object copies the colour or shape of an earlier one (makes multi-object
# expressions possible and appearance expressions need attribute combinations).
SHARE_ATTRIBUTE_PROB = 0.35

DEFAULT_VIDEOS = 100
DEFAULT_FRAMES = 9
DEFAULT_SIZE = (96, 160)
DEFAULT_SEED = 0
DEFAULT_SPLIT = "train"
JPEG_QUALITY = 95


def _plural(noun: str) -> str:
    return noun + "s"


def _build_vocabulary() -> list[str]:
    words = {"the", "that", "moves", "moving", "to", "stops", "turns", "enters", "leaves", "does", "not", "move", "of"}
    words |= set(COLOURS) | set(SIZES) | set(TEXTURES) | set(NUMBERS.values())
    for noun in SHAPES + GENERIC_NOUNS:
        words |= {noun, _plural(noun)}
    for clauses in MOTION_CLAUSES.values():
        for clause in clauses:
            words |= set(clause.split())
    for rel in RELATIONS:
        words |= set(rel.split())
    return sorted(words)


VOCABULARY: list[str] = _build_vocabulary()

# --------------------------------------------------------------------------- data types


@dataclass
class SynthObject:
    """One shape of a video: its attributes, motion and path.

    centers: ``(T, 2)`` float (y, x) of the sprite centre per frame (may lie outside the frame).
    tags: the motion words it satisfies (``left``, ``stops``, ``enters``, ...).
    """

    shape: str
    colour: str
    size: str
    texture: str
    side: int
    motion: str
    centers: np.ndarray
    z: int = 0
    tags: tuple[str, ...] = ()

    def attribute(self, key: str) -> str:
        return getattr(self, key)


@dataclass
class SynthVideo:
    """A generated video.

    frames: ``(T, H, W, 3)`` uint8 RGB. masks: ``(N_obj, T, H, W)`` bool, the visible pixels of
    each object. expressions: ``(sentence, obj_ids)`` pairs, ``obj_ids`` sorted object indices.
    kinds: ``appearance``/``motion``/``relation``/``multi`` per expression.
    """

    frames: np.ndarray
    masks: np.ndarray
    expressions: list[tuple[str, tuple[int, ...]]]
    kinds: list[str] = field(default_factory=list)
    objects: list[SynthObject] = field(default_factory=list)
    name: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def union_mask(self, index: int) -> np.ndarray:
        """``(T, H, W)`` bool union of the objects expression ``index`` refers to."""
        ids = list(self.expressions[index][1])
        return self.masks[ids].any(axis=0)


# --------------------------------------------------------------------------- validation


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """``"128x224"`` (or ``(128, 224)``) -> ``(H, W)``, validated."""
    if isinstance(text, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
        if not m:
            raise FlowRVSError(f"size must look like HxW (e.g. 128x224), got {text!r}")
        size = (int(m.group(1)), int(m.group(2)))
    else:
        try:
            h, w = text
            size = (int(h), int(w))
        except (TypeError, ValueError):
            raise FlowRVSError(f"size must be (H, W), got {text!r}") from None
    _check_size(size)
    return size


def _check_size(size: tuple[int, int]) -> None:
    h, w = size
    if h < 16 or w < 16:
        raise FlowRVSError(f"size must be at least 16x16, got {h}x{w}")
    if h > 4096 or w > 4096:
        raise FlowRVSError(f"size must be at most 4096x4096, got {h}x{w}")


def _check_frames(frames: int) -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)):
        raise FlowRVSError(f"frames must be an integer, got {frames!r}")
    if frames < 1:
        raise FlowRVSError(f"frames must be at least 1, got {frames}")
    if frames > 10000:
        raise FlowRVSError(f"frames must be at most 10000, got {frames}")
    return int(frames)


def parse_mix(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"appearance=0.6,motion=0.25,..."`` or a mapping -> normalised kind fractions."""
    if text is None:
        return dict(EXPRESSION_MIX)
    if isinstance(text, str):
        mix: dict[str, float] = {k: 0.0 for k in EXPRESSION_KINDS}
        for part in text.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in mix:
                raise FlowRVSError(f"mix entries look like kind=fraction with kind in {', '.join(EXPRESSION_KINDS)}; got {part!r}")
            try:
                mix[key] = float(value)
            except ValueError:
                raise FlowRVSError(f"mix fraction for {key} is not a number: {value!r}") from None
    else:
        unknown = sorted(set(text) - set(EXPRESSION_KINDS))
        if unknown:
            raise FlowRVSError(f"unknown expression kind(s) in mix: {', '.join(unknown)}")
        mix = {k: float(text.get(k, 0.0)) for k in EXPRESSION_KINDS}
    if any(not math.isfinite(v) or v < 0 for v in mix.values()):
        raise FlowRVSError("mix fractions must be finite and non-negative")
    if mix["appearance"] <= 0:
        raise FlowRVSError("mix needs a positive appearance fraction (it is the fallback for every video)")
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


def _check_split_name(split: str) -> str:
    if not isinstance(split, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", split):
        raise FlowRVSError(f"split name must be a plain folder name (letters, digits, _ . -), got {split!r}")
    return split


# --------------------------------------------------------------------------- drawing


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


def _background(rng: np.random.Generator, frames: int, h: int, w: int) -> np.ndarray:
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


def _sprite(obj: SynthObject) -> tuple[np.ndarray, np.ndarray]:
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


# --------------------------------------------------------------------------- scene


def _sample_objects(rng: np.random.Generator, n: int, min_hw: int) -> list[dict]:
    objs: list[dict] = []
    seen: set[tuple[str, str, str, str]] = set()
    while len(objs) < n:
        attrs = {
            "shape": SHAPES[int(rng.integers(len(SHAPES)))],
            "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))],
            "size": SIZES[int(rng.integers(len(SIZES)))],
            "texture": TEXTURES[int(rng.choice(len(TEXTURES), p=TEXTURE_PROBS))],
        }
        if objs and rng.random() < SHARE_ATTRIBUTE_PROB:
            donor = objs[int(rng.integers(len(objs)))]
            key = "colour" if rng.random() < 0.5 else "shape"
            attrs[key] = donor[key]
        ident = (attrs["shape"], attrs["colour"], attrs["size"], attrs["texture"])
        if ident in seen:
            continue
        seen.add(ident)
        jitter = rng.uniform(0.9, 1.1)
        attrs["side"] = max(MIN_SIDE[attrs["size"]], int(round(SIZE_FRACTION[attrs["size"]] * min_hw * jitter)))
        objs.append(attrs)
    return objs


def _motion_kind(rng: np.random.Generator, frames: int) -> str:
    if frames == 1:
        return "still"
    if frames == 2:
        kinds, probs = ("still", "move", "enter", "leave"), (0.35, 0.35, 0.15, 0.15)
    else:
        kinds = ("still", "move", "enter", "leave", "stop", "turn")
        probs = (0.22, 0.22, 0.1, 0.1, 0.18, 0.18)
    return kinds[int(rng.choice(len(kinds), p=probs))]


def _relative_path(rng: np.random.Generator, kind: str, frames: int, h: int, w: int) -> tuple[np.ndarray, list[str]]:
    """Offsets ``(T, 2)`` (y, x) from the start and the direction tags of an in-frame path."""
    rel = np.zeros((frames, 2), dtype=np.float64)
    if kind == "still":
        return rel, []
    t = np.arange(frames, dtype=np.float64)
    d1 = list(DIRECTIONS)[int(rng.integers(4))]
    extent1 = w if DIRECTIONS[d1][1] else h
    if kind == "move":
        speed = rng.uniform(0.25, 0.5) * extent1 / (frames - 1)
        rel += np.outer(t, DIRECTIONS[d1]) * speed
        return rel, [d1]
    lo = max(1, (frames - 1) // 3)
    hi = max(lo, frames - 1 - max(1, (frames - 1) // 3))
    k = int(rng.integers(lo, hi + 1))  # the path changes at frame k
    if kind == "stop":
        speed = rng.uniform(0.35, 0.6) * extent1 / (frames - 1)
        rel += np.outer(np.minimum(t, k), DIRECTIONS[d1]) * speed
        return rel, [d1]
    # turn: a perpendicular second leg
    perp = ["up", "down"] if d1 in ("left", "right") else ["left", "right"]
    d2 = perp[int(rng.integers(2))]
    extent2 = w if DIRECTIONS[d2][1] else h
    s1 = rng.uniform(0.35, 0.6) * extent1 / (frames - 1)
    s2 = rng.uniform(0.35, 0.6) * extent2 / (frames - 1)
    rel += np.outer(np.minimum(t, k), DIRECTIONS[d1]) * s1
    rel += np.outer(np.maximum(t - k, 0), DIRECTIONS[d2]) * s2
    return rel, [d1, d2]


def _place(
    rng: np.random.Generator, kind: str, side: int, frames: int, h: int, w: int, others: list[np.ndarray]
) -> tuple[np.ndarray, list[str]]:
    """Per-frame centres ``(T, 2)`` and direction tags; best of a few tries for spacing."""
    r = side / 2.0
    best, best_score = None, -1.0
    for _ in range(6):
        if kind in ("enter", "leave"):
            d = list(DIRECTIONS)[int(rng.integers(4))]
            dy, dx = DIRECTIONS[d]
            axis = 1 if dx else 0
            extent = w if axis else h
            sign = dx if axis else dy
            outside = r + 1.0 + rng.uniform(0.0, 0.3) * side
            inside = rng.uniform(r + 1.0, max(r + 1.0, extent - r - 1.0))
            if kind == "enter":
                # moving by `sign`, it starts beyond the edge it comes from
                start = -outside if sign > 0 else extent + outside
                end = inside
            else:
                start = inside
                end = extent + outside if sign > 0 else -outside
            other_extent = h if axis else w
            cross = rng.uniform(r, max(r, other_extent - r))
            centers = np.empty((frames, 2), dtype=np.float64)
            centers[:, axis] = np.linspace(start, end, frames)
            centers[:, 1 - axis] = cross
            tags = [d]
        else:
            rel, tags = _relative_path(rng, kind, frames, h, w)
            centers = np.empty((frames, 2), dtype=np.float64)
            for axis, extent in ((0, h), (1, w)):
                lo_rel, hi_rel = rel[:, axis].min(), rel[:, axis].max()
                room = extent - 2 * r
                span = hi_rel - lo_rel
                if span > room:  # too long a path for this frame: shrink it
                    scale = max(room, 0.0) / span
                    rel[:, axis] *= scale
                    lo_rel, hi_rel = lo_rel * scale, hi_rel * scale
                lo = r - lo_rel
                hi = max(lo, extent - r - hi_rel)
                centers[:, axis] = rng.uniform(lo, hi) + rel[:, axis]
        if not others:
            return centers, tags
        score = min(float(np.min(np.linalg.norm(centers - o, axis=1))) for o in others)
        if score > best_score:
            best, best_score, best_tags = centers, score, tags
    return best, best_tags


def _paste_box(center: np.ndarray, side: int, h: int, w: int):
    """Frame and sprite slices of a sprite centred at ``center`` (None when fully outside)."""
    y0 = int(math.floor(center[0] - side / 2.0 + 0.5))
    x0 = int(math.floor(center[1] - side / 2.0 + 0.5))
    fy0, fx0 = max(y0, 0), max(x0, 0)
    fy1, fx1 = min(y0 + side, h), min(x0 + side, w)
    if fy0 >= fy1 or fx0 >= fx1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1)), (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))


def _render(
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


def _make_scene(rng: np.random.Generator, frames: int, h: int, w: int):
    for _attempt in range(50):
        n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
        specs = _sample_objects(rng, n, min(h, w))
        objects: list[SynthObject] = []
        placed: list[np.ndarray] = []
        z_order = rng.permutation(n)
        for i, spec in enumerate(specs):
            kind = _motion_kind(rng, frames)
            centers, tags = _place(rng, kind, spec["side"], frames, h, w, placed)
            placed.append(centers)
            objects.append(
                SynthObject(
                    shape=spec["shape"], colour=spec["colour"], size=spec["size"], texture=spec["texture"],
                    side=spec["side"], motion=kind, centers=centers, z=int(z_order[i]),
                )
            )
        background = _background(rng, frames, h, w)
        sprites = [_sprite(o) for o in objects]
        video, visible, full = _render(objects, sprites, background)
        full_area = full.sum(axis=(2, 3))  # (N, T)
        vis_area = visible.sum(axis=(2, 3))
        sprite_area = np.array([m.sum() for m, _ in sprites], dtype=np.float64)
        # every object must show at least half of itself in some frame
        if np.all(vis_area.max(axis=1) >= 0.5 * sprite_area):
            for i, obj in enumerate(objects):
                tags = set()
                if obj.motion == "still":
                    tags.add("still")
                elif obj.motion == "stop":
                    tags.add("stops")
                elif obj.motion == "turn":
                    tags.add("turns")
                if obj.motion != "still":
                    moved = obj.centers[1:] - obj.centers[:-1]
                    for name, (dy, dx) in DIRECTIONS.items():
                        if np.any(moved[:, 0] * dy + moved[:, 1] * dx > 1e-9):
                            tags.add(name)
                if full_area[i, 0] == 0 and full_area[i, -1] > 0:
                    tags.add("enters")
                if full_area[i, 0] > 0 and full_area[i, -1] == 0:
                    tags.add("leaves")
                obj.tags = tuple(sorted(tags))
            return objects, video, visible
    raise RuntimeError("could not place the objects of a synthetic video")  # pragma: no cover


# --------------------------------------------------------------------------- expressions

_ATTR_KEYS = ("size", "texture", "colour", "shape")


def _np_words(attrs: Mapping[str, str], generic: str, plural: bool = False) -> list[str]:
    words = [attrs[k] for k in ("size", "texture", "colour") if k in attrs]
    noun = attrs.get("shape", generic)
    words.append(_plural(noun) if plural else noun)
    return words


def _matches(obj: SynthObject, attrs: Mapping[str, str]) -> bool:
    return all(obj.attribute(k) == v for k, v in attrs.items())


def _subsets(obj: SynthObject, allow_empty: bool = False) -> list[dict[str, str]]:
    out = []
    for n in range(0 if allow_empty else 1, len(_ATTR_KEYS) + 1):
        for keys in itertools.combinations(_ATTR_KEYS, n):
            out.append({k: obj.attribute(k) for k in keys})
    return out


def _pick_description(rng: np.random.Generator, valid: list[dict[str, str]]) -> dict[str, str]:
    """A random minimal description, or (30%) any valid one that does not needlessly say ``solid``."""
    smallest = min(len(a) for a in valid)
    pool = [a for a in valid if len(a) == smallest]
    if rng.random() < 0.3:
        extra = [a for a in valid if a.get("texture", "") != "solid"]
        if extra:
            pool = extra
    return pool[int(rng.integers(len(pool)))]


def _generic(rng: np.random.Generator) -> str:
    return GENERIC_NOUNS[int(rng.integers(len(GENERIC_NOUNS)))]


def _phrase(rng: np.random.Generator, attrs: Mapping[str, str], plural: bool = False) -> str:
    return " ".join(["the"] + _np_words(attrs, _generic(rng), plural))


class _Scene:
    """Predicates over a generated scene, shared by the generator and :func:`resolve`."""

    def __init__(self, objects: list[SynthObject], visible: np.ndarray):
        self.objects = objects
        self.present = visible.any(axis=(2, 3))  # (N, T)

    def select(self, attrs: Mapping[str, str]) -> set[int]:
        return {i for i, o in enumerate(self.objects) if _matches(o, attrs)}

    def unique_descriptions(self, i: int) -> list[dict[str, str]]:
        return [a for a in _subsets(self.objects[i]) if self.select(a) == {i}]

    def _offsets(self, i: int, j: int, rel: str) -> np.ndarray:
        """Signed distance by which ``i`` is ``rel`` of ``j`` in the frames showing both."""
        both = self.present[i] & self.present[j]
        ci, cj = self.objects[i].centers[both], self.objects[j].centers[both]
        if rel == "above":
            return cj[:, 0] - ci[:, 0]
        if rel == "below":
            return ci[:, 0] - cj[:, 0]
        if rel == "left of":
            return cj[:, 1] - ci[:, 1]
        return ci[:, 1] - cj[:, 1]

    def relation_holds(self, i: int, j: int, rel: str) -> bool:
        """``i`` is clearly ``rel`` of ``j`` in every frame showing both, and they share at least half the frames."""
        if i == j:
            return False
        d = self._offsets(i, j, rel)
        need = max(1, (self.present.shape[1] + 1) // 2)
        margin = 0.25 * (self.objects[i].side + self.objects[j].side)
        return d.size >= need and bool(np.all(d >= margin))

    def relation_touches(self, i: int, j: int, rel: str) -> bool:
        """``i`` is ``rel`` of ``j`` in at least one frame showing both (could be read as satisfying it)."""
        if i == j:
            return False
        d = self._offsets(i, j, rel)
        return bool(np.any(d > 0))


def _least_referred(rng: np.random.Generator, counts: list[int], exclude: set[int] = frozenset()) -> list[int]:
    """Object indices ordered by how rarely they have been referred to, ties in random order."""
    order = rng.permutation(len(counts))
    return sorted((int(i) for i in order if int(i) not in exclude), key=lambda i: counts[i])


def _appearance(rng, scene: _Scene, counts):
    for i in _least_referred(rng, counts)[:2]:
        valid = scene.unique_descriptions(i)
        if valid:
            return _phrase(rng, _pick_description(rng, valid)), (i,)
    return None


def _motion(rng, scene: _Scene, counts):
    for i in _least_referred(rng, counts):
        obj = scene.objects[i]
        tags = list(obj.tags)
        for k in rng.permutation(len(tags)):
            tag = tags[int(k)]
            movers = {j for j, o in enumerate(scene.objects) if tag in o.tags}
            valid = [a for a in _subsets(obj, allow_empty=True) if scene.select(a) & movers == {i}]
            if not valid:
                continue
            attrs = _pick_description(rng, valid)
            clauses = MOTION_CLAUSES[tag]
            return f"{_phrase(rng, attrs)} {clauses[int(rng.integers(len(clauses)))]}", (i,)
    return None


def _relation(rng, scene: _Scene, counts):
    n = len(scene.objects)
    for i in _least_referred(rng, counts):
        for j in (int(j) for j in rng.permutation(n)):
            if j == i:
                continue
            ref_valid = scene.unique_descriptions(j)
            if not ref_valid:
                continue
            for r in rng.permutation(len(RELATIONS)):
                rel = RELATIONS[int(r)]
                if not scene.relation_holds(i, j, rel):
                    continue
                touching = {k for k in range(n) if scene.relation_touches(k, j, rel)}
                valid = [a for a in _subsets(scene.objects[i], allow_empty=True) if scene.select(a) & touching == {i}]
                if not valid:
                    continue
                attrs = _pick_description(rng, valid)
                ref = _phrase(rng, _pick_description(rng, ref_valid))
                return f"{_phrase(rng, attrs)} {rel} {ref}", (i,)
    return None


def _multi(rng, scene: _Scene, counts):
    options = []
    seen = set()
    for obj in scene.objects:
        for attrs in _subsets(obj):
            key = tuple(sorted(attrs.items()))
            if key in seen:
                continue
            seen.add(key)
            members = scene.select(attrs)
            if len(members) in NUMBERS and (attrs.get("texture") != "solid" or len(attrs) == 1):
                options.append((attrs, members))
    if not options:
        return None
    smallest = min(len(a) for a, _ in options)
    pool = [o for o in options if len(o[0]) == smallest] if rng.random() < 0.7 else options
    attrs, members = pool[int(rng.integers(len(pool)))]
    words = ["the", NUMBERS[len(members)]] + _np_words(attrs, _generic(rng), plural=True)
    return " ".join(words), tuple(sorted(members))


_BUILDERS = {"appearance": _appearance, "motion": _motion, "relation": _relation, "multi": _multi}


def _expressions(rng: np.random.Generator, scene: _Scene, frames: int, mix: Mapping[str, float]):
    kinds = list(EXPRESSION_KINDS)
    p = np.array([mix[k] for k in kinds], dtype=np.float64)
    if frames < 2:
        p[kinds.index("motion")] = 0.0
    p /= p.sum()
    target = int(rng.integers(MIN_EXPRESSIONS, MAX_EXPRESSIONS + 1))
    counts = [0] * len(scene.objects)
    out: list[tuple[str, tuple[int, ...]]] = []
    out_kinds: list[str] = []
    sentences: set[str] = set()
    for _ in range(target * 8):
        if len(out) >= target:
            break
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        made = _BUILDERS[kind](rng, scene, counts)
        if made is None or made[0] in sentences:
            continue
        sentences.add(made[0])
        out.append(made)
        out_kinds.append(kind)
        for i in made[1]:
            counts[i] += 1
    # appearance descriptions always exist (attribute tuples are distinct): top up to the minimum
    i = 0
    while len(out) < MIN_EXPRESSIONS and i < len(scene.objects):
        for attrs in scene.unique_descriptions(i):
            sentence = _phrase(rng, attrs)
            if sentence not in sentences:
                sentences.add(sentence)
                out.append((sentence, (i,)))
                out_kinds.append("appearance")
                break
        i += 1
    return out, out_kinds


# --------------------------------------------------------------------------- public API


def video_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of video ``index`` of a split generated with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def generate_video(
    rng_or_seed: np.random.Generator | int,
    frames: int = DEFAULT_FRAMES,
    size: tuple[int, int] | str = DEFAULT_SIZE,
    mix: Mapping[str, float] | str | None = None,
    name: str = "",
) -> SynthVideo:
    """Generate one video in memory (no disk): frames, visible masks and referring expressions."""
    frames = _check_frames(frames)
    h, w = parse_size(size)
    mix = parse_mix(mix)
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
    else:
        if isinstance(rng_or_seed, bool) or not isinstance(rng_or_seed, (int, np.integer)) or rng_or_seed < 0:
            raise FlowRVSError(f"seed must be a non-negative integer, got {rng_or_seed!r}")
        rng = np.random.default_rng(int(rng_or_seed))
    objects, video, visible = _make_scene(rng, frames, h, w)
    scene = _Scene(objects, visible)
    expressions, kinds = _expressions(rng, scene, frames, mix)
    return SynthVideo(frames=video, masks=visible, expressions=expressions, kinds=kinds, objects=objects, name=name)


def _tokens(sentence: str) -> list[str]:
    return [re.sub(r"[^\w]", "", t) for t in sentence.lower().split() if re.sub(r"[^\w]", "", t)]


def _parse_np(words: list[str]) -> tuple[dict[str, str], bool, int]:
    """Parse ``the ... noun`` at the start of ``words``: (attributes, plural, words used)."""
    if not words or words[0] != "the":
        raise ValueError(f"expected 'the' at {' '.join(words)!r}")
    attrs: dict[str, str] = {}
    k = 1
    while k < len(words):
        wd = words[k]
        if wd in SIZES:
            attrs["size"] = wd
        elif wd in TEXTURES:
            attrs["texture"] = wd
        elif wd in COLOURS:
            attrs["colour"] = wd
        else:
            break
        k += 1
    if k >= len(words):
        raise ValueError("noun phrase without a noun")
    noun = words[k]
    for base in SHAPES + GENERIC_NOUNS:
        if noun in (base, _plural(base)):
            if base in SHAPES:
                attrs["shape"] = base
            return attrs, noun != base, k + 1
    raise ValueError(f"unknown noun {noun!r}")


def resolve(video: SynthVideo, sentence: str) -> tuple[int, ...]:
    """The objects of ``video`` that ``sentence`` (in the generator's grammar) refers to, sorted.

    Relations count only when they hold clearly (see ``_Scene.relation_holds``).
    Raises ``ValueError`` on a sentence outside the grammar.
    """
    scene = _Scene(video.objects, video.masks)
    words = _tokens(sentence)
    if len(words) >= 2 and words[0] == "the" and words[1] in NUMBERS.values():
        count = {v: k for k, v in NUMBERS.items()}[words[1]]
        attrs, plural, used = _parse_np(["the"] + words[2:])
        if not plural or used + 1 != len(words):
            raise ValueError(f"bad multi-object sentence {sentence!r}")
        members = scene.select(attrs)
        return tuple(sorted(members)) if len(members) == count else ()
    attrs, plural, used = _parse_np(words)
    if plural:
        raise ValueError(f"plural without a number in {sentence!r}")
    candidates = scene.select(attrs)
    rest = words[used:]
    if not rest:
        return tuple(sorted(candidates))
    clause = " ".join(rest)
    for tag, clauses in MOTION_CLAUSES.items():
        if clause in clauses:
            return tuple(sorted(i for i in candidates if tag in video.objects[i].tags))
    for rel in RELATIONS:
        rel_words = rel.split()
        if rest[: len(rel_words)] == rel_words:
            ref_attrs, ref_plural, ref_used = _parse_np(rest[len(rel_words) :])
            if ref_plural or len(rel_words) + ref_used != len(rest):
                raise ValueError(f"bad relation in {sentence!r}")
            refs = scene.select(ref_attrs)
            if len(refs) != 1:
                return ()
            (j,) = refs
            return tuple(sorted(i for i in candidates if scene.relation_holds(i, j, rel)))
    raise ValueError(f"unknown clause {clause!r} in {sentence!r}")


def write_split(
    out_dir: str | Path,
    split: str = DEFAULT_SPLIT,
    videos: int | Iterable[SynthVideo] = DEFAULT_VIDEOS,
    frames: int = DEFAULT_FRAMES,
    size: tuple[int, int] | str = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    mix: Mapping[str, float] | str | None = None,
    progress: bool | None = None,
    quality: int = JPEG_QUALITY,
) -> Path:
    """Write a split in the MeViS layout under ``out_dir/split`` (atomically) and return that folder.

    ``videos`` is a count (then video ``i`` is ``generate_video(video_rng(seed, i), frames, size)``
    with id ``synth_<seed>_<i:04d>``) or already generated :class:`SynthVideo` objects (ids from
    their ``name``, else ``synth_<i:04d>``). ``progress=None`` shows a bar only on a terminal.
    """
    from tqdm import tqdm

    from flowrvs.io.atomic import atomic_dir
    from flowrvs.io.masks import encode_rle

    split = _check_split_name(split)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FlowRVSError(f"output {out_dir} exists and is not a folder")
    if isinstance(videos, (int, np.integer)) and not isinstance(videos, bool):
        if videos < 1:
            raise FlowRVSError(f"videos must be at least 1, got {videos}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise FlowRVSError(f"seed must be a non-negative integer, got {seed!r}")
        frames = _check_frames(frames)
        size = parse_size(size)
        mix = parse_mix(mix)
        count = int(videos)

        def source():
            for i in range(count):
                yield f"synth_{seed}_{i:04d}", generate_video(video_rng(seed, i), frames, size, mix=mix)

    else:
        given = list(videos)
        count = len(given)
        if count == 0:
            raise FlowRVSError("no videos to write")

        def source():
            for i, v in enumerate(given):
                yield (v.name or f"synth_{i:04d}"), v

    meta: dict[str, dict] = {}
    mask_dict: dict[str, list] = {}
    next_anno = 0
    with atomic_dir(out_dir / split) as tmp:
        images = tmp / "JPEGImages"
        for vid, video in tqdm(source(), total=count, desc=f"synth {split}", unit="video", disable=None if progress is None else not progress):
            if vid in meta:
                raise FlowRVSError(f"duplicate video id {vid!r}")
            folder = images / vid
            folder.mkdir(parents=True)
            names = [f"{t:05d}" for t in range(video.num_frames)]
            for t, fname in enumerate(names):
                Image.fromarray(video.frames[t]).save(folder / f"{fname}.jpg", format="JPEG", quality=quality, subsampling=0)
            annos = list(range(next_anno, next_anno + len(video.masks)))
            next_anno += len(video.masks)
            for a, obj_masks in zip(annos, video.masks):
                mask_dict[str(a)] = [encode_rle(m) if m.any() else None for m in obj_masks]
            exps = {}
            for k, (sentence, ids) in enumerate(video.expressions):
                exps[str(k)] = {"exp": sentence, "obj_id": [int(i) for i in ids], "anno_id": [annos[i] for i in ids]}
            meta[vid] = {"frames": names, "expressions": exps}
        (tmp / "meta_expressions.json").write_text(json.dumps({"videos": meta}, sort_keys=True))
        (tmp / "mask_dict.json").write_text(json.dumps(mask_dict, sort_keys=True))
    return out_dir / split


def pick_expressions(video: "SynthVideo", count: int) -> list[int]:
    """Indices of up to ``count`` of ``video``'s expressions, one per kind first (appearance,
    motion, relation, multi), in index order (what the demo and the web page's examples show)."""
    chosen: list[int] = []
    for kind in ("appearance", "motion", "relation", "multi"):
        for i, k in enumerate(video.kinds):
            if k == kind and i not in chosen:
                chosen.append(i)
                break
    chosen += [i for i in range(len(video.expressions)) if i not in chosen]
    return sorted(chosen[:count])


__all__ = [
    "pick_expressions",
    "COLOURS",
    "SHAPES",
    "SIZES",
    "TEXTURES",
    "EXPRESSION_MIX",
    "VOCABULARY",
    "SynthObject",
    "SynthVideo",
    "generate_video",
    "parse_mix",
    "parse_size",
    "resolve",
    "video_rng",
    "write_split",
]
