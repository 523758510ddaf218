"""Frame handling between user videos and the model: working size, 4k+1 padding, and back.

The Wan VAE compresses 8x in space and 4x in time (causally), and the DiT patches latents
2x2, so the model works on ``4k + 1`` frames whose sides are multiples of 16. Videos are
resized into a box keeping their aspect, padded in time with copies of the last frame, and
the masks are cut and resized back to the input's exact shape afterwards.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from flowrvs.errors import FlowRVSError

MULTIPLE = 16
RESIZE_CHUNK = 32  # frames resized at a time, to bound the float32 peak
RESIZE_RULES = ("public", "oriented", "exact")
WORKING_BOX = (480, 832)  # (height, width) box the public FlowRVS inference resizes frames into


def fit_size(
    h: int,
    w: int,
    box: tuple[int, int] = WORKING_BOX,
    multiple: int = 16,
    upscale: bool = True,
    rule: str = "oriented",
) -> tuple[int, int]:
    """The ``(H', W')`` a ``h x w`` frame is resized to so that it fits inside ``box``.

    ``rule="public"`` (:func:`public_fit_size`): the public FlowRVS rule, the box as given,
    sides floored. ``rule="exact"``: the box itself, sides floored to multiples (aspect not
    kept; REM's square 512x512). ``rule="oriented"``: the box ``(BH, BW)`` is turned to the frame's orientation (a portrait frame,
    ``h > w``, uses ``(max, min)`` of the box, a landscape one ``(min, max)``; a square frame
    uses the box as given). The frame is scaled by ``s = min(BH / h, BW / w)`` keeping its
    aspect ratio (``upscale=False`` caps ``s`` at 1), each side is rounded to the nearest
    multiple of ``multiple`` (halves up), then clamped to ``[multiple, box side floored to a multiple]``.
    So 1080x1920 -> 464x832, 720x1280 -> 464x832, 480x854 -> 464x832, 1920x1080 -> 832x464.
    """
    if rule == "public":
        return public_fit_size(h, w, box, multiple)
    if rule == "exact":
        _, _, bh, bw = _checked_fit(h, w, box, multiple)
        return bh // multiple * multiple, bw // multiple * multiple
    if rule != "oriented":
        raise FlowRVSError(f"unknown resize rule {rule!r}; choose one of {', '.join(RESIZE_RULES)}")
    h, w, bh, bw = _checked_fit(h, w, box, multiple)
    if h > w:
        bh, bw = max(bh, bw), min(bh, bw)
    elif w > h:
        bh, bw = min(bh, bw), max(bh, bw)
    s = min(bh / h, bw / w)
    if not upscale:
        s = min(s, 1.0)
    max_h, max_w = bh // multiple * multiple, bw // multiple * multiple
    out_h = min(max(int(math.floor(h * s / multiple + 0.5)) * multiple, multiple), max_h)
    out_w = min(max(int(math.floor(w * s / multiple + 0.5)) * multiple, multiple), max_w)
    return out_h, out_w


def _checked_fit(h: int, w: int, box: tuple[int, int], multiple: int) -> tuple[int, int, int, int]:
    """``(h, w, box_h, box_w)`` as ints, or a one-line error for a frame or box that cannot fit."""
    h, w = int(h), int(w)
    if h <= 0 or w <= 0:
        raise FlowRVSError(f"cannot fit a {h}x{w} frame: sides must be positive")
    bh, bw = int(box[0]), int(box[1])
    if multiple <= 0 or min(bh, bw) < multiple:
        raise FlowRVSError(f"box {box} must have sides of at least multiple={multiple}")
    return h, w, bh, bw


def public_fit_size(h: int, w: int, box: tuple[int, int] = WORKING_BOX, multiple: int = 16) -> tuple[int, int]:
    """The public FlowRVS working size: ``s = min(BH / h, BW / w)``, each side ``floor(side * s)``
    floored to a multiple of ``multiple`` (at least one multiple). The box is never turned:
    1080x1920 -> 464x832, 720x1280 -> 464x832, 1920x1080 (portrait) -> 480x256.
    """
    h, w, bh, bw = _checked_fit(h, w, box, multiple)
    s = min(bh / h, bw / w)
    return tuple(max(math.floor(side * s) // multiple * multiple, multiple) for side in (h, w))


def resize_frames_pil(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, h, w, 3)`` uint8 by PIL's bilinear filter on 8-bit pixels
    (what torchvision's ``Resize`` does to a PIL image, the public inference's resize)."""
    from PIL import Image

    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    h, w = size
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])


def padded_length(num_frames: int, min_frames: int = 1) -> int:
    """Smallest ``4k + 1 >= max(num_frames, min_frames)``."""
    return 4 * math.ceil((max(num_frames, min_frames) - 1) / 4) + 1


def frames_to_tensor(frames: np.ndarray, size: tuple[int, int], resample: str = "torch",
                     min_frames: int = 1) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 frames -> ``(1, 3, T', h, w)`` float32 in [-1, 1].

    Resized to ``size = (h, w)`` and padded to ``T' = 4k + 1 >= min_frames`` frames with copies
    of the last frame. ``resample="torch"``: bilinear, antialiased, on float pixels (training);
    ``"pil"``: PIL's bilinear on 8-bit pixels, then ``(x / 255 - 0.5) / 0.5`` (the public inference).
    """
    if resample not in ("torch", "pil"):
        raise ValueError(f"resample must be 'torch' or 'pil', got {resample!r}")
    num_frames = frames.shape[0]
    chunks = []
    for start in range(0, num_frames, RESIZE_CHUNK):
        chunk = np.ascontiguousarray(frames[start : start + RESIZE_CHUNK])
        if resample == "pil":
            chunk = torch.from_numpy(resize_frames_pil(chunk, size)).permute(0, 3, 1, 2).float()
            chunks.append(chunk.div_(255).sub_(0.5).div_(0.5))
            continue
        chunk = torch.from_numpy(chunk).permute(0, 3, 1, 2).float()
        if tuple(chunk.shape[-2:]) != tuple(size):
            chunk = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        chunks.append(chunk.clamp_(0, 255).div_(127.5).sub_(1))
    video = torch.cat(chunks)
    pad = padded_length(num_frames, min_frames) - num_frames
    if pad:
        video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
    return video.permute(1, 0, 2, 3).unsqueeze(0)


def masks_to_tensor(masks: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``(T, H, W)`` bool masks -> ``(1, T', h, w)`` float {0, 1}, nearest-resized and padded like frames."""
    mask = torch.from_numpy(np.ascontiguousarray(masks)).float().unsqueeze(1)
    if tuple(mask.shape[-2:]) != tuple(size):
        mask = F.interpolate(mask, size=size, mode="nearest")
    pad = padded_length(mask.shape[0]) - mask.shape[0]
    if pad:
        mask = torch.cat([mask, mask[-1:].expand(pad, -1, -1, -1)])
    return mask[:, 0].unsqueeze(0)


def logits_to_input_shape(logits: torch.Tensor, num_frames: int, height: int, width: int) -> torch.Tensor:
    """``(T', h, w)`` mask logits at working size -> ``(T, H, W)`` float32: padding dropped, bilinear resize."""
    logits = logits[:num_frames].float().unsqueeze(1)
    if tuple(logits.shape[-2:]) != (height, width):
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits[:, 0]
