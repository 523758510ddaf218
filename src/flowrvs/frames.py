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

MULTIPLE = 16
RESIZE_CHUNK = 32  # frames resized at a time, to bound the float32 peak


def fit_size(height: int, width: int, box: tuple[int, int] = (480, 832), multiple: int = MULTIPLE) -> tuple[int, int]:
    """Working size of a ``height x width`` frame: the largest size inside ``box`` with the frame's
    aspect, sides rounded to multiples of ``multiple`` (at least one multiple).

    The box is ``(short, long)`` sides: a portrait frame uses it transposed. Frames smaller
    than the box are scaled up, as in training.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    short, long = sorted(box)
    box_h, box_w = (long, short) if height > width else (short, long)
    scale = min(box_h / height, box_w / width)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return min(h, max(multiple, box_h // multiple * multiple)), min(w, max(multiple, box_w // multiple * multiple))


def padded_length(num_frames: int) -> int:
    """Smallest ``4k + 1 >= num_frames``."""
    return 4 * math.ceil((num_frames - 1) / 4) + 1


def frames_to_tensor(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 frames -> ``(1, 3, T', h, w)`` float32 in [-1, 1].

    Resized (bilinear, antialiased) to ``size = (h, w)`` and padded to ``T' = 4k + 1`` frames
    with copies of the last frame.
    """
    num_frames = frames.shape[0]
    chunks = []
    for start in range(0, num_frames, RESIZE_CHUNK):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + RESIZE_CHUNK]))
        chunk = chunk.permute(0, 3, 1, 2).float()
        if tuple(chunk.shape[-2:]) != tuple(size):
            chunk = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        chunks.append(chunk.clamp_(0, 255).div_(127.5).sub_(1))
    video = torch.cat(chunks)
    pad = padded_length(num_frames) - num_frames
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
