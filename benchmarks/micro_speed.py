"""Wall time of two small hot paths, formerly asserted in the tests (run by hand, not a test).

    python benchmarks/micro_speed.py

- ``generate_video``: one default video (the generator must not slow down dataset writing);
- ``region_similarity`` + ``contour_accuracy`` of 100 frames at 1280x720 (a long video's J&F).

Prints the best of ``--repeats`` runs of each, with the CPU and the NumPy and OpenCV versions.
The tests count the work instead (``tests/test_metrics.py`` checks that F only dilates the
objects' bounding box).
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from flowrvs.data.synth.generate import generate_video, video_rng
from flowrvs.runtime.machine import cpu_name
from flowrvs.eval.metrics import contour_accuracy, region_similarity


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def drifting_ellipses(t: int = 100, h: int = 720, w: int = 1280) -> tuple[np.ndarray, np.ndarray]:
    """``(T, H, W)`` prediction (uint8 0/255) and ground truth (bool): a large ellipse drifting right, slightly off."""
    yy, xx = np.ogrid[:h, : w + t]
    g0 = ((yy - 360) / 250) ** 2 + ((xx - 600) / 400) ** 2 <= 1
    p0 = (((yy - 370) / 240) ** 2 + ((xx - 610) / 410) ** 2 <= 1).astype(np.uint8) * 255
    gt = np.stack([g0[:, t - i : t - i + w] for i in range(t)])
    pred = np.stack([p0[:, t - i : t - i + w] for i in range(t)])
    return pred, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} cores, numpy {np.__version__}, opencv {cv2.__version__}")
    gen = best_of(lambda: generate_video(video_rng(7, 0)), args.repeats)
    print(f"generate_video (default size): {gen:.3f} s")
    pred, gt = drifting_ellipses()
    jf = best_of(lambda: (region_similarity(pred, gt), contour_accuracy(pred, gt)), args.repeats)
    print(f"J and F of 100 frames at 1280x720: {jf:.3f} s")


if __name__ == "__main__":
    main()
