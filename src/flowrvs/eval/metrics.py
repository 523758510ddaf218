"""Referring video segmentation metrics: region similarity J and contour accuracy F (DAVIS / MeViS).

Definitions (those of the DAVIS benchmark code that MeViS, Ref-YouTube-VOS and Ref-DAVIS reuse):

* **J** (region similarity) of one frame is ``|P & G| / |P | G|``, and 1 when both masks are empty.
* **F** (contour accuracy) of one frame compares one-pixel boundary maps (:func:`boundary_map`)
  within a tolerance of ``r`` pixels: ``r = ceil(bound_th * sqrt(H**2 + W**2))`` when
  ``bound_th < 1`` (the default 0.008 gives 12 px at 1280x720), else ``r = bound_th``. Each boundary
  is dilated with a disk of radius ``r`` (offsets with ``dx**2 + dy**2 <= r**2``);
  ``precision = |B_P & dil(B_G)| / |B_P|``, ``recall = |B_G & dil(B_P)| / |B_G|``,
  ``F = 2PR / (P + R)`` (0 when ``P + R == 0``). F is 1 when neither mask has a boundary pixel and 0
  when exactly one has. As in DAVIS, a mask covering the whole frame has no boundary pixel.
* One expression's scores (:func:`score_expression`): the means over its frames of J and of F.
* Dataset scores: J is the mean over expressions of each expression's mean J over its frames,
  F likewise, and ``J&F = (J + F) / 2`` (:func:`jf_summary`).

Masks may have any dtype; nonzero is foreground. Both functions take ``(T, H, W)`` (returning one
value per frame, shape ``(T,)``) or a single ``(H, W)`` frame (returning shape ``(1,)``).

Void pixels (the DAVIS annotations' value 255, pixels nobody could label) are optional: given a
``void`` mask of the same shape, those pixels are taken out of *both* masks before anything is
measured, as the DAVIS-2017 toolkit does in its unsupervised task. For J they then count in neither
the intersection nor the union; for F the boundaries are drawn from the masks without them.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import cv2
import numpy as np

__all__ = [
    "region_similarity",
    "contour_accuracy",
    "boundary_map",
    "disk",
    "tolerance_radius",
    "score_expression",
    "jf_summary",
]


def _as_stack(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as ``(T, H, W)`` arrays (dtype kept); ValueError on mismatched or bad shapes."""
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != ground truth shape {g.shape}")
    if p.ndim == 2:
        p, g = p[None], g[None]
    elif p.ndim != 3:
        raise ValueError(f"masks must be (H, W) or (T, H, W), got shape {p.shape}")
    return p, g


def _bool_frame(frame: np.ndarray) -> np.ndarray:
    """One frame as a C-contiguous bool mask (nonzero = foreground); no copy when already so."""
    return np.ascontiguousarray(frame if frame.dtype == bool else frame != 0)


def _as_void(void, shape: tuple) -> np.ndarray | None:
    """``void`` as a ``(T, H, W)`` array matching the masks' stacked ``shape`` (None stays None)."""
    if void is None:
        return None
    v = np.asarray(void)
    if v.ndim == 2:
        v = v[None]
    if v.shape != shape:
        raise ValueError(f"void shape {np.shape(void)} does not match the masks' shape {shape}")
    return v


def _drop_void(pi: np.ndarray, gi: np.ndarray, v: np.ndarray | None, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i`` of both masks with its void pixels set to background (unchanged without void)."""
    if v is None:
        return pi, gi
    keep = ~_bool_frame(v[i])
    return pi & keep, gi & keep


def region_similarity(pred, gt, void=None) -> np.ndarray:
    """Per-frame Jaccard index J (float64, shape ``(T,)``; ``(1,)`` for one ``(H, W)`` frame).

    ``|P & G| / |P | G|``, 1 where both masks are empty. Nonzero is foreground. ``void``: pixels
    that count in neither the intersection nor the union (see the module docstring).
    """
    p, g = _as_stack(pred, gt)
    v = _as_void(void, p.shape)
    out = np.ones(p.shape[0], dtype=np.float64)
    buf = np.empty(p.shape[1:], dtype=bool)
    for i in range(p.shape[0]):  # frame by frame: no (T, H, W) temporaries
        pi, gi = _drop_void(_bool_frame(p[i]), _bool_frame(g[i]), v, i)
        inter = np.count_nonzero(np.logical_and(pi, gi, out=buf))
        union = np.count_nonzero(pi) + np.count_nonzero(gi) - inter
        if union:
            out[i] = inter / union
    return out


def boundary_map(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary map of a ``(..., H, W)`` mask, exactly as DAVIS ``seg2bmap`` draws it.

    A pixel is boundary when it differs from its east, south or south-east neighbour, where a
    neighbour outside the image counts as equal to the pixel (edge-replicated padding). So on the
    last column only the south neighbour is compared, on the last row only the east one, and the
    bottom-right pixel is never boundary. (DAVIS zero-pads, then overwrites the last row with
    ``seg ^ east`` and the last column with ``seg ^ south`` and clears the corner: the same map.)
    Both sides of a mask edge are marked on the top/left (the background pixel) and on the
    bottom/right (the foreground pixel): a filled ``n x n`` square gives the outline of the
    ``(n+1) x (n+1)`` box one pixel up-left of it, ``4n`` pixels.
    """
    seg = np.asarray(seg)
    seg = seg if seg.dtype == bool else seg != 0
    b = np.zeros(seg.shape, dtype=bool)
    np.not_equal(seg[..., :, :-1], seg[..., :, 1:], out=b[..., :, :-1])  # east
    b[..., :-1, :] |= seg[..., :-1, :] != seg[..., 1:, :]  # south
    b[..., :-1, :-1] |= seg[..., :-1, :-1] != seg[..., 1:, 1:]  # south-east
    return b


def disk(radius: float) -> np.ndarray:
    """``uint8`` structuring element: offsets ``(dy, dx)`` with ``dx**2 + dy**2 <= radius**2`` (skimage ``disk``)."""
    if radius < 0:
        raise ValueError(f"disk radius must be >= 0, got {radius}")
    n = int(math.floor(radius))
    y, x = np.ogrid[-n : n + 1, -n : n + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def tolerance_radius(bound_th: float, shape: tuple[int, int]) -> float:
    """Boundary tolerance in pixels: ``ceil(bound_th * diagonal)`` if ``bound_th < 1``, else ``bound_th``."""
    if not bound_th > 0:
        raise ValueError(f"bound_th must be > 0, got {bound_th}")
    if bound_th >= 1:
        return float(bound_th)
    h, w = shape
    return float(math.ceil(bound_th * math.sqrt(h * h + w * w)))


def contour_accuracy(pred, gt, bound_th: float = 0.008, void=None) -> np.ndarray:
    """Per-frame boundary F-measure (float64, shape ``(T,)``; ``(1,)`` for one ``(H, W)`` frame).

    See the module docstring for the definition (and for ``void``: pixels removed from both masks
    before their boundaries are drawn). Each frame is processed inside the bounding box of
    ``P | G`` grown by one pixel (boundary pixels cannot lie outside it, and dilation values there
    depend only on boundary pixels inside it), so small objects in large frames are cheap.
    """
    p, g = _as_stack(pred, gt)
    v = _as_void(void, p.shape)
    t, h, w = p.shape
    kernel = disk(tolerance_radius(bound_th, (h, w)))
    out = np.ones(t, dtype=np.float64)
    union = np.empty((h, w), dtype=bool)
    for i in range(t):
        pi, gi = _drop_void(_bool_frame(p[i]), _bool_frame(g[i]), v, i)
        np.logical_or(pi, gi, out=union)
        x, y, bw, bh = cv2.boundingRect(union.view(np.uint8))
        if bw == 0 or bh == 0:
            continue  # both empty: no boundary on either side, F = 1
        y0, y1 = max(y - 1, 0), min(y + bh + 1, h)
        x0, x1 = max(x - 1, 0), min(x + bw + 1, w)
        bp = boundary_map(pi[y0:y1, x0:x1])
        bg = boundary_map(gi[y0:y1, x0:x1])
        n_p = np.count_nonzero(bp)
        n_g = np.count_nonzero(bg)
        if n_p == 0 or n_g == 0:
            out[i] = 1.0 if n_p == n_g else 0.0
            continue
        dil_g = cv2.dilate(bg.view(np.uint8), kernel).view(bool)
        dil_p = cv2.dilate(bp.view(np.uint8), kernel).view(bool)
        precision = np.count_nonzero(bp & dil_g) / n_p
        recall = np.count_nonzero(bg & dil_p) / n_g
        out[i] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return out


def score_expression(pred, gt, bound_th: float = 0.008) -> tuple[float, float]:
    """Mean J and mean F over the frames of one expression.

    ``pred``, ``gt``: ``(T, H, W)`` or ``(H, W)`` masks of the same shape, any dtype, nonzero =
    foreground. Returns two floats in [0, 1]. ValueError on different shapes or no frames.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    if pred.ndim == 3 and pred.shape[0] == 0:
        raise ValueError("cannot score an expression with no frames")
    j = region_similarity(pred, gt)
    f = contour_accuracy(pred, gt, bound_th=bound_th)
    return float(j.mean()), float(f.mean())


def jf_summary(j_per_expression: Iterable[float], f_per_expression: Iterable[float]) -> dict:
    """Dataset scores from per-expression mean J and mean F: ``{"J": .., "F": .., "J&F": ..}``.

    J is the mean over expressions (each expression counts once, whatever its length), F likewise,
    and J&F their average. Raises ValueError on no expressions or lists of different lengths.
    """
    js = np.asarray(list(j_per_expression), dtype=np.float64)
    fs = np.asarray(list(f_per_expression), dtype=np.float64)
    if js.shape != fs.shape:
        raise ValueError(f"{js.size} J values but {fs.size} F values")
    if js.size == 0:
        raise ValueError("no expressions to summarise")
    j, f = float(js.mean()), float(fs.mean())
    return {"J": j, "F": f, "J&F": (j + f) / 2}


def concat_frames(parts: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The per-frame values of consecutive chunks joined into those of the whole expression."""
    parts = list(parts)
    if not parts:
        raise ValueError("no frames to join")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
