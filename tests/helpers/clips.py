"""Hand-made training clips on disk, in the synthetic MeViS layout that ``flowrvs synth`` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowrvs.data.synth.video import SynthVideo
from flowrvs.data.synth.generate import generate_video
from flowrvs.data.synth.writer import write_split

T, H, W = 5, 32, 48
SENTENCE = "the large red square"


def one_clip(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Write split ``train`` of one 5-frame 32x48 video with a big red rectangle moving right and one
    sentence (:data:`SENTENCE`) for it; return its ``(T, H, W, 3)`` uint8 frames and ``(T, H, W)`` bool mask."""
    video = generate_video(0, frames=T, size=(H, W))
    mask = np.zeros((T, H, W), bool)
    for t in range(T):
        mask[t, 6:24, 8 + 2 * t : 32 + 2 * t] = True
    frames = video.frames.copy()
    frames[mask] = (220, 30, 30)
    write_split(root, "train", [SynthVideo(frames=frames, masks=mask[None], expressions=[(SENTENCE, (0,))], name="clip")],
                progress=False)
    return frames, mask
