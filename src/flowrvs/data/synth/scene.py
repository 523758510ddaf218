"""A scene: sampling distinct objects, their motion (still, move, stop, turn, enter, leave, and on
request return: leave and come back) and paths, drawing them, and tagging each object with the
motion words it satisfies."""

from __future__ import annotations

import numpy as np

from flowrvs.data.synth.render import background, composite, sprite
from flowrvs.data.synth.video import SynthObject
from flowrvs.data.synth.vocabulary import COLOURS, DIRECTIONS, SHAPES, SIZES, TEXTURE_PROBS, TEXTURES

MIN_OBJECTS, MAX_OBJECTS = 2, 5
# Object side as a fraction of min(H, W): 96 px high frames give ~17 px small and ~35 px large shapes.
SIZE_FRACTION: dict[str, float] = {"small": 0.18, "large": 0.36}
MIN_SIDE: dict[str, int] = {"small": 5, "large": 8}  # keeps the two sizes apart in tiny frames
# Chance that a new object copies the colour or shape of an earlier one (makes multi-object
# expressions possible and appearance expressions need attribute combinations).
SHARE_ATTRIBUTE_PROB = 0.35
# A returning object needs frames to leave, stay out and come back.
MIN_RETURN_FRAMES = 5


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


def _motion_kind(rng: np.random.Generator, frames: int, returns: float = 0.0) -> str:
    """The motion of a new object; ``returns`` is the chance of ``return`` (leave and come back),
    drawn only when positive, so a scene without it is the same as before it existed."""
    if returns > 0 and frames >= MIN_RETURN_FRAMES and rng.random() < returns:
        return "return"
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


def _return_path(rng: np.random.Generator, side: int, frames: int, h: int, w: int) -> tuple[np.ndarray, list[str]]:
    """Centres ``(T, 2)`` and direction tags of an object that starts in the frame, leaves it across
    an edge, stays wholly outside for a while and comes back in at another point."""
    r = side / 2.0
    d = list(DIRECTIONS)[int(rng.integers(4))]
    dy, dx = DIRECTIONS[d]
    axis = 1 if dx else 0
    extent, other_extent = (w, h) if axis else (h, w)
    sign = dx if axis else dy
    outside = extent + r + 1.0 if sign > 0 else -r - 1.0
    inside = rng.uniform(r + 1.0, max(r + 1.0, extent - r - 1.0), size=2)
    last = frames - 1
    out_at = int(rng.integers(max(1, last // 5), max(2, 2 * last // 5) + 1))  # wholly out from here
    back_at = int(rng.integers(out_at + 1, max(out_at + 2, 4 * last // 5) + 1))  # and until here
    back_at = min(back_at, last - 1)
    t = np.arange(frames, dtype=np.float64)
    centers = np.empty((frames, 2), dtype=np.float64)
    centers[:, axis] = np.interp(t, [0, out_at, back_at, last], [inside[0], outside, outside, inside[1]])
    centers[:, 1 - axis] = np.interp(t, [0, last], rng.uniform(r, max(r, other_extent - r), size=2))
    back = {"left": "right", "right": "left", "up": "down", "down": "up"}[d]
    return centers, [d, back]


def _place(
    rng: np.random.Generator, kind: str, side: int, frames: int, h: int, w: int, others: list[np.ndarray]
) -> tuple[np.ndarray, list[str]]:
    """Per-frame centres ``(T, 2)`` and direction tags; best of a few tries for spacing."""
    r = side / 2.0
    best, best_score = None, -1.0
    for _ in range(6):
        if kind == "return":
            centers, tags = _return_path(rng, side, frames, h, w)
        elif kind in ("enter", "leave"):
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


def make_scene(
    rng: np.random.Generator, frames: int, h: int, w: int, returns: float = 0.0
) -> tuple[list[SynthObject], np.ndarray, np.ndarray]:
    """Objects (with motion tags), frames ``(T, H, W, 3)`` uint8 and visible masks ``(N, T, H, W)`` bool
    of a new scene in which every object shows at least half of itself in some frame; each object
    returns (leaves and comes back) with chance ``returns`` (videos of 5 frames or more)."""
    for _attempt in range(50):
        n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
        specs = _sample_objects(rng, n, min(h, w))
        objects: list[SynthObject] = []
        placed: list[np.ndarray] = []
        z_order = rng.permutation(n)
        for i, spec in enumerate(specs):
            kind = _motion_kind(rng, frames, returns)
            centers, tags = _place(rng, kind, spec["side"], frames, h, w, placed)
            placed.append(centers)
            objects.append(
                SynthObject(
                    shape=spec["shape"], colour=spec["colour"], size=spec["size"], texture=spec["texture"],
                    side=spec["side"], motion=kind, centers=centers, z=int(z_order[i]),
                )
            )
        backdrop = background(rng, frames, h, w)
        sprites = [sprite(o) for o in objects]
        video, visible, full = composite(objects, sprites, backdrop)
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
